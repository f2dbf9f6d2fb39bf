//! sr-save
