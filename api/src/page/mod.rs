//! The page for people at `/`: the live table as charts, its freshness and provenance, and a
//! try-a-customer form. One HTML file, one script and one style sheet, compiled into the
//! binary: no CDN, no external fonts, it works offline. The page only calls the API's own
//! routes (`/api/v1/table`, `/api/v1/segments`, `/api/v1/voucher`), with the token the person
//! gives it when one is required.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{HttpRequest, HttpResponse};

/// One file of the page, compiled into the binary.
#[derive(Debug)]
pub struct Asset {
    /// Its name, as the OpenAPI document's operation id.
    pub name: &'static str,
    pub path: &'static str,
    pub content_type: &'static str,
    /// What it is, for the OpenAPI document.
    pub description: &'static str,
    pub body: &'static str,
}

pub const INDEX: &str = "/";
pub const SCRIPT: &str = "/page/app.js";
pub const STYLE: &str = "/page/app.css";
pub const ICON: &str = "/page/icon.svg";

/// Every file of the page: each is served at its path by [`asset`].
pub const ASSETS: [Asset; 4] = [
    Asset {
        name: "index",
        path: INDEX,
        content_type: "text/html; charset=utf-8",
        description: "The page for people: the live table, its freshness and a try-a-customer form",
        body: include_str!("assets/index.html"),
    },
    Asset {
        name: "script",
        path: SCRIPT,
        content_type: "text/javascript; charset=utf-8",
        description: "The page's script",
        body: include_str!("assets/app.js"),
    },
    Asset {
        name: "style",
        path: STYLE,
        content_type: "text/css; charset=utf-8",
        description: "The page's style sheet",
        body: include_str!("assets/app.css"),
    },
    Asset {
        name: "icon",
        path: ICON,
        content_type: "image/svg+xml",
        description: "The page's icon",
        body: include_str!("assets/icon.svg"),
    },
];

/// Only this origin's own script, style and API; no inline script or style, no frames, no
/// plugins. (The Swagger UI at `/docs` is a separate page with its own needs.)
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// Serves the asset at the request's path (each asset's route leads here).
pub async fn asset(req: HttpRequest) -> HttpResponse {
    let Some(asset) = ASSETS.iter().find(|a| a.path == req.path()) else {
        return HttpResponse::NotFound().finish();
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        // The binary is the version: a new binary may change them, so browsers revalidate.
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(asset.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX_HTML: &str = ASSETS[0].body;
    const APP_JS: &str = ASSETS[1].body;
    const APP_CSS: &str = ASSETS[2].body;

    #[test]
    fn the_page_loads_only_its_own_files_and_no_inline_code() {
        assert!(INDEX_HTML.contains(&format!(r#"<script src="{SCRIPT}" defer></script>"#)));
        assert!(INDEX_HTML.contains(&format!(r#"<link rel="stylesheet" href="{STYLE}">"#)));
        let lower = INDEX_HTML.to_ascii_lowercase();
        assert_eq!(
            lower.matches("<script").count(),
            1,
            "one script, from a file"
        );
        for inline in [
            "<style",
            " style=",
            " onclick=",
            " onload=",
            " onsubmit=",
            "javascript:",
        ] {
            assert!(!lower.contains(inline), "inline code: {inline}");
        }
        assert!(INDEX_HTML.contains(&format!(r#"<link rel="icon" href="{ICON}""#)));
        for external in ["http://", "https://", "//cdn", "fonts.googleapis"] {
            assert!(
                !INDEX_HTML.contains(external) && !APP_CSS.contains(external),
                "{external}"
            );
        }
        // The script calls only this origin's API.
        for call in APP_JS.match_indices("fetch(") {
            let rest = &APP_JS[call.0..];
            assert!(
                !rest[..rest.find(')').unwrap_or(rest.len())].contains("://"),
                "{rest:.60}"
            );
        }
    }

    fn get(path: &str) -> HttpResponse {
        let req = actix_web::test::TestRequest::get()
            .uri(path)
            .to_http_request();
        actix_web::rt::System::new().block_on(asset(req))
    }

    #[test]
    fn each_asset_is_served_at_its_path_with_its_type() {
        use actix_web::body::MessageBody as _;
        for asset in &ASSETS {
            let response = get(asset.path);
            assert_eq!(response.status(), 200, "{}", asset.path);
            assert_eq!(
                response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .map(|v| v.as_bytes()),
                Some(asset.content_type.as_bytes())
            );
            let body = response.into_body().try_into_bytes().expect("in memory");
            assert_eq!(body, asset.body.as_bytes());
        }
        assert_eq!(get("/page/none.js").status(), 404);
    }
}
