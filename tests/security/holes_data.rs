//! Holes found by the hostile review (issue 11): each test is named after its hole and failed on
//! the main it was written against.

#[allow(unused_imports)]
use super::*;
