"""`python -m rgb_webhook_channel`: print the folder to set as TEMPLATES_DIR."""

from rgb_webhook_channel import TEMPLATES

print(TEMPLATES)
