//! The HTTP door: routes, their error answers and bodies, its metrics, and the OpenAPI document.
//!
//! - [`routes`]: the route table and the handlers; [`errors`]: the error answers;
//! - [`batch`]: many requests as a JSON array or an NDJSON stream ([`ndjson`]);
//! - [`listing`]: the live table as JSON, rendered once per version;
//! - [`versions`]: every version, what the live one changed, what the gate held;
//! - [`model`]: the bodies; [`openapi`]: the OpenAPI document and Swagger UI;
//! - [`metrics`]: requests by route and status, and the middleware that counts them.

pub mod batch;
pub mod errors;
pub mod listing;
pub mod metrics;
pub mod model;
pub mod ndjson;
pub mod openapi;
pub mod routes;
pub mod versions;
