//! The page for people at `/`: the live table as charts, its freshness and provenance, and a
//! try-a-customer form. One HTML file, one script and one style sheet, compiled into the
//! binary: no CDN, no external fonts, it works offline. The page only calls the API's own
//! routes (`/api/v1/table`, `/api/v1/segments`, `/api/v1/voucher`), with the token the person
//! gives it when one is required.

use actix_web::HttpResponse;
use actix_web::http::header::{self, CacheControl, CacheDirective, ContentType};

pub const INDEX: &str = "/";
pub const SCRIPT: &str = "/page/app.js";
pub const STYLE: &str = "/page/app.css";
pub const ICON: &str = "/page/icon.svg";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const ICON_SVG: &str = include_str!("assets/icon.svg");

/// Only this origin's own script, style and API; no inline script or style, no frames, no
/// plugins. (The Swagger UI at `/docs` is a separate page with its own needs.)
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        // The binary is the version: a new binary may change them, so browsers revalidate.
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(body)
}

#[utoipa::path(
    get,
    path = "/",
    tag = "page",
    responses((status = 200, description = "The page for people: the live table, its freshness and a try-a-customer form", body = String, content_type = "text/html"))
)]
pub async fn index() -> HttpResponse {
    asset(ContentType::html().0.as_ref(), INDEX_HTML)
}

#[utoipa::path(
    get,
    path = "/page/app.js",
    tag = "page",
    responses((status = 200, description = "The page's script", body = String, content_type = "text/javascript"))
)]
pub async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

#[utoipa::path(
    get,
    path = "/page/app.css",
    tag = "page",
    responses((status = 200, description = "The page's style sheet", body = String, content_type = "text/css"))
)]
pub async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", APP_CSS)
}

#[utoipa::path(
    get,
    path = "/page/icon.svg",
    tag = "page",
    responses((status = 200, description = "The page's icon", body = String, content_type = "image/svg+xml"))
)]
pub async fn icon() -> HttpResponse {
    asset("image/svg+xml", ICON_SVG)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
