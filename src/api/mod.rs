//! REST handlers: plain functions from a request to a reply, listed in
//! `http::routes::ROUTES`.

pub mod exec;
pub mod system;
pub mod tasks;
pub mod workers;
