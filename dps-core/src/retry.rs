//! Status classification and retry delays.
