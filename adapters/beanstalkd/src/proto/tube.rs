//! Tube names, validated against the protocol's naming rules before anything
//! is sent or accepted. The rules live in `pulpo-model`, shared with the file
//! queue and pulpo's config; they are re-exported here beside the commands
//! that carry the names.

pub use pulpo_model::{InvalidTubeName, TubeName};
