//! The HTTP door: routes, their error answers and bodies, and the OpenAPI document.
//!
//! - [`routes`]: the route table and the handlers; [`errors`]: the error answers;
//! - [`batch`]: many requests as a JSON array or an NDJSON stream ([`ndjson`]);
//! - [`model`]: the bodies; [`openapi`]: the OpenAPI document and Swagger UI.

pub mod batch;
pub mod errors;
pub mod model;
pub mod ndjson;
pub mod openapi;
pub mod routes;
