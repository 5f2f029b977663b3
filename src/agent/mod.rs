//! What agents receive: the screen-pop (`screen_pop`, worded for people in `view`), read
//! through the API by agents and admins (`auth`, `routes`), pushed live to the agent console
//! (`live`, `console`), opened by a signed URL in a CRM frame (`pop`) and POSTed to a CRM
//! webhook (`crm`).

pub mod auth;
pub mod console;
pub mod crm;
pub mod live;
pub mod pop;
pub mod routes;
pub mod screen_pop;
pub mod view;

pub use screen_pop::ScreenPop;
