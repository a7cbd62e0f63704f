//! nom streaming parsers for command and reply lines.
