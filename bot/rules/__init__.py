"""The rules of what goes out when: pure functions of sessions, ledger rows and `now`."""
