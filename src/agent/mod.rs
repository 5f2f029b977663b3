//! What agents receive: the screen-pop (`screen_pop`), read through the API by agents and
//! admins authenticated with a bearer token (`auth`, `routes`).

pub mod auth;
pub mod routes;
pub mod screen_pop;

pub use screen_pop::ScreenPop;
