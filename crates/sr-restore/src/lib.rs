//! sr-restore
