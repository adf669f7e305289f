//! REST handlers: plain functions from a request to a reply, listed in
//! `http::routes::ROUTES`.

pub mod system;
pub mod workers;
