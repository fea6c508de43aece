"""The yibao-verify node."""
