"""The auditors' view of the access log."""
