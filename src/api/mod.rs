//! The JSON API's boundary: the extractors its handlers take requests apart with.

pub mod extract;
