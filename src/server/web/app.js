// Placeholder: the web engineer replaces this file.
