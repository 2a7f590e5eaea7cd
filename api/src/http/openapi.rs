//! The OpenAPI document, generated from the handlers and body types, and the Swagger UI that
//! reads it. Swagger UI is compiled into the binary: `/docs` needs no network.

use utoipa::OpenApi;
use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, ResponseBuilder, Type};

use crate::http::routes;
use crate::page;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "voucher-api",
        description = "The voucher most used by similar customers, from the live voucher table."
    ),
    paths(
        routes::voucher,
        crate::http::batch::vouchers,
        routes::segments,
        routes::table,
        crate::http::versions::versions,
        voucher_serve::health::healthz,
        voucher_serve::health::readyz,
        voucher_serve::health::metrics_text,
        routes::openapi,
        routes::docs_redirect,
    ),
    components(schemas(voucher_shared::score::SegmentTypeName)),
    tags(
        (name = "vouchers", description = "Vouchers and the table they come from"),
        (name = "operations", description = "Health, readiness, metrics and documentation"),
        (name = "page", description = "The page for people at `/`"),
    )
)]
struct ApiDoc;

const BEARER: &str = "bearer";

/// The document; with `token_required`, the routes the token guards (those under
/// [`routes::GUARDED_SCOPE`], as in [`routes::configure`]) declare bearer authentication.
pub fn document(token_required: bool) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    for asset in &page::ASSETS {
        // Documented as its media type, without parameters such as the charset.
        let media_type = asset.content_type.split(';').next().unwrap_or_default();
        let body = ContentBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build();
        let operation = OperationBuilder::new()
            .tag("page")
            .operation_id(Some(asset.name))
            .response(
                "200",
                ResponseBuilder::new()
                    .description(asset.description)
                    .content(media_type, body),
            );
        doc.paths
            .add_path_operation(asset.path, vec![HttpMethod::Get], operation);
    }
    if token_required {
        if let Some(components) = doc.components.as_mut() {
            components.add_security_scheme(
                BEARER,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            if !path.starts_with(routes::GUARDED_SCOPE) {
                continue;
            }
            for operation in [item.get.as_mut(), item.post.as_mut()]
                .into_iter()
                .flatten()
            {
                operation.security =
                    Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
            }
        }
    }
    doc
}

/// Swagger UI's settings: read the document from `/openapi.json`.
pub fn swagger_config() -> utoipa_swagger_ui::Config<'static> {
    utoipa_swagger_ui::Config::new([routes::OPENAPI])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_and_status_is_documented() {
        let json = serde_json::to_value(document(false)).expect("json");
        let voucher = &json["paths"]["/api/v1/voucher"]["post"];
        for status in ["200", "400", "401", "404", "413", "415", "422", "503"] {
            assert!(voucher["responses"][status].is_object(), "voucher {status}");
        }
        for path in [
            "/api/v1/segments",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/docs",
        ] {
            assert!(json["paths"][path]["get"].is_object(), "{path}");
        }
        assert!(voucher.get("security").is_none());
        let request = &json["components"]["schemas"]["VoucherRequest"];
        assert_eq!(request["example"]["country_code"], "Peru");
        let names = &request["properties"]["segment_name"]["enum"];
        let expected: Vec<&str> = voucher_shared::segments::SegmentType::ALL
            .iter()
            .map(|t| t.name())
            .collect();
        assert_eq!(
            names,
            &serde_json::json!(expected),
            "the documented types are the known ones"
        );
    }

    #[test]
    fn the_document_and_the_route_table_agree() {
        let json = serde_json::to_value(document(true)).expect("json");
        for route in routes::routes() {
            if route.path == routes::DOCS_FILES {
                continue; // Swagger UI's own files, not an API.
            }
            let method = route.method.as_str().to_ascii_lowercase();
            let operation = &json["paths"][route.path][&method];
            assert!(
                operation.is_object(),
                "{method} {} is undocumented",
                route.path
            );
            assert_eq!(
                operation.get("security").is_some(),
                route.needs_token(),
                "{}",
                route.path
            );
        }
        let request = &json["components"]["schemas"]["VoucherRequest"];
        let required: Vec<&str> = request["required"]
            .as_array()
            .expect("required list")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(
            required,
            [
                "customer_id",
                "country_code",
                "last_order_ts",
                "first_order_ts",
                "total_orders",
                "segment_name"
            ]
        );
        assert_eq!(request["properties"]["total_orders"]["type"], "integer");
        assert_eq!(request["properties"]["country_code"]["type"], "string");
    }

    #[test]
    fn a_token_adds_bearer_security_to_guarded_routes_only() {
        let json = serde_json::to_value(document(true)).expect("json");
        assert_eq!(
            json["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert_eq!(
            json["paths"]["/api/v1/voucher"]["post"]["security"],
            serde_json::json!([{"bearer": []}])
        );
        assert_eq!(
            json["paths"]["/api/v1/segments"]["get"]["security"],
            serde_json::json!([{"bearer": []}])
        );
        assert!(json["paths"]["/healthz"]["get"].get("security").is_none());
    }
}
