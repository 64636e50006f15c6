//! The built web app (`web/dist`), read into memory at start and served at `/`: a few hundred KiB
//! of files, answered without touching the disk. Paths that are not files but look like the app's
//! own routes (`/analytics`) get `index.html`, so the app routes them itself.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};

use crate::http::body::{Body, full};

/// Built assets carry a content hash in their names, so they never change under one name.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Everything else (`index.html` above all) is revalidated, so a new build shows at once.
const REVALIDATE: &str = "no-cache";

#[derive(Debug, Clone)]
struct File {
    body: Bytes,
    content_type: HeaderValue,
    cache_control: &'static str,
}

/// The app's files by URL path.
#[derive(Debug, Default)]
pub struct WebApp {
    files: HashMap<String, File>,
}

impl WebApp {
    /// Reads every file under `dir`.
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let mut app = Self::default();
        app.read_dir(dir, "")?;
        Ok(app)
    }

    fn read_dir(&mut self, dir: &Path, prefix: &str) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let url = format!("{prefix}/{name}");
            if entry.file_type()?.is_dir() {
                self.read_dir(&entry.path(), &url)?;
                continue;
            }
            let mime = mime_guess::from_path(&name).first_or_octet_stream();
            let content_type = HeaderValue::from_str(mime.essence_str())
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            let cache_control = if prefix == "/assets" {
                IMMUTABLE
            } else {
                REVALIDATE
            };
            let file = File {
                body: Bytes::from(std::fs::read(entry.path())?),
                content_type,
                cache_control,
            };
            self.files.insert(url, file);
        }
        Ok(())
    }

    /// The file at `path`; the index page for an app route; `None` for a missing file.
    pub fn response(&self, path: &str) -> Option<Response<Body>> {
        let looks_like_a_file = path
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains('.'));
        let file = match self.files.get(path) {
            Some(file) => file,
            None if !looks_like_a_file => self.files.get("/index.html")?,
            None => return None,
        };
        let mut response = Response::new(full(file.body.clone()));
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, file.content_type.clone());
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(file.cache_control));
        Some(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> WebApp {
        let dir = std::env::temp_dir().join(format!("web-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("assets")).expect("temp dir");
        std::fs::write(dir.join("index.html"), "<html>app</html>").expect("write");
        std::fs::write(dir.join("assets/app-1a2b.js"), "console.log(1)").expect("write");
        let app = WebApp::load(&dir).expect("load");
        std::fs::remove_dir_all(dir).expect("clean up");
        app
    }

    fn header(response: &Response<Body>, name: http::header::HeaderName) -> &str {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    #[test]
    fn files_are_served_with_their_type_and_caching() {
        let app = app();
        let script = app.response("/assets/app-1a2b.js").expect("served");
        assert_eq!(header(&script, CONTENT_TYPE), "text/javascript");
        assert_eq!(header(&script, CACHE_CONTROL), IMMUTABLE);
        let index = app.response("/index.html").expect("served");
        assert_eq!(header(&index, CONTENT_TYPE), "text/html");
        assert_eq!(header(&index, CACHE_CONTROL), REVALIDATE);
    }

    #[test]
    fn app_routes_fall_back_to_the_index_but_missing_files_do_not() {
        let app = app();
        for route in ["/", "/analytics", "/bookings/0190-abc"] {
            let page = app.response(route).expect("index");
            assert_eq!(header(&page, CONTENT_TYPE), "text/html", "{route}");
        }
        assert!(app.response("/assets/missing.js").is_none());
        assert!(app.response("/favicon.ico").is_none());
    }
}
