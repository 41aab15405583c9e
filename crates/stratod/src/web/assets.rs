//! The front end, embedded in the binary: one page (the instance list and each instance's
//! detail, console and lab views are routes of it), its script and style, and xterm.js
//! (vendored from npm, `assets/vendor/xterm/VERSION`).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("assets/index.html");

/// The files under `/assets/`: name, content type, body.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    ),
    (
        "lab.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/lab.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/app.css"),
    ),
    (
        "xterm.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/vendor/xterm/xterm.js"),
    ),
    (
        "xterm.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/vendor/xterm/xterm.css"),
    ),
];

/// The page, for every route of the front end.
pub(super) async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}

/// One of the page's files.
pub(super) async fn asset(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, ctype, body)) => (
            [
                (header::CONTENT_TYPE, *ctype),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
