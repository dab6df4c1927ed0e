//! HTTP routing with Spin's `[[trigger.http]] route` rules.
//!
//! A route is a list of segments, each a literal or a `:name` parameter
//! matching exactly one segment, optionally ending in `/...` which matches
//! the route itself and anything below it. When several routes match, an
//! exact route beats a parameterised one, which beats a wildcard; among
//! wildcards the longest prefix wins.

use anyhow::{Result, bail, ensure};
use std::cmp::Reverse;

/// One segment of a route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A parsed route pattern and the component it leads to.
#[derive(Debug, Clone)]
struct Route {
    pattern: String,
    segments: Vec<Segment>,
    wildcard: bool,
    component: String,
}

impl Route {
    fn parse(pattern: &str, component: &str) -> Result<Route> {
        ensure!(
            pattern.starts_with('/'),
            "route `{pattern}` must start with `/`"
        );
        let mut raw: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
        let wildcard = raw.last() == Some(&"...");
        if wildcard {
            raw.pop();
        }
        let mut segments = Vec::with_capacity(raw.len());
        for seg in raw {
            if seg == "..." {
                bail!("route `{pattern}`: `...` is only allowed at the end");
            }
            segments.push(match seg.strip_prefix(':') {
                Some("") => bail!("route `{pattern}`: parameter without a name"),
                Some(name) => Segment::Param(name.to_owned()),
                None => Segment::Literal(seg.to_owned()),
            });
        }
        Ok(Route {
            pattern: pattern.to_owned(),
            segments,
            wildcard,
            component: component.to_owned(),
        })
    }

    /// The route with a trailing `/...` removed (Spin's "component route").
    fn component_route(&self) -> String {
        let mut out = String::new();
        for seg in &self.segments {
            out.push('/');
            match seg {
                Segment::Literal(s) => out.push_str(s),
                Segment::Param(p) => {
                    out.push(':');
                    out.push_str(p);
                }
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    fn param_count(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| matches!(s, Segment::Param(_)))
            .count()
    }

    /// Matches `path` (no query), returning the parameters and the path
    /// below the matched prefix.
    fn matches<'p>(&self, path: &'p str) -> Option<(Vec<(String, String)>, &'p str)> {
        let mut params = Vec::new();
        let mut rest = path;
        for seg in &self.segments {
            let after_slash = rest.strip_prefix('/')?;
            let (value, tail) = match after_slash.find('/') {
                Some(i) => after_slash.split_at(i),
                None => (after_slash, ""),
            };
            match seg {
                Segment::Literal(lit) if lit == value => {}
                Segment::Param(name) if !value.is_empty() => {
                    params.push((name.clone(), value.to_owned()));
                }
                _ => return None,
            }
            rest = tail;
        }
        if self.wildcard {
            Some((params, rest))
        } else if rest.is_empty() || rest == "/" {
            Some((params, ""))
        } else {
            None
        }
    }

    /// Smaller is more specific; see the module docs.
    fn rank(&self) -> (bool, Reverse<usize>, usize) {
        (
            self.wildcard,
            Reverse(self.segments.len()),
            self.param_count(),
        )
    }
}

/// The outcome of routing one request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// Id of the component to run.
    pub component: String,
    /// The route pattern as written in the manifest (`spin-matched-route`).
    pub matched_route: String,
    /// The route without a trailing `/...` (`spin-component-route`).
    pub component_route: String,
    /// The part of the path below the matched prefix (`spin-path-info`);
    /// empty for an exact match.
    pub path_info: String,
    /// `:name` parameters and the segments they matched.
    pub params: Vec<(String, String)>,
}

/// All routes of an application.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Builds a router from `(route pattern, component id)` pairs; invalid
    /// and duplicate patterns are errors.
    pub fn new<'a>(routes: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Router> {
        let mut parsed: Vec<Route> = Vec::new();
        for (pattern, component) in routes {
            let route = Route::parse(pattern, component)?;
            if let Some(dup) = parsed
                .iter()
                .find(|r| r.segments == route.segments && r.wildcard == route.wildcard)
            {
                bail!(
                    "route `{pattern}` (component `{component}`) duplicates `{}` (component `{}`)",
                    dup.pattern,
                    dup.component
                );
            }
            parsed.push(route);
        }
        Ok(Router { routes: parsed })
    }

    /// The `(route pattern, component id)` pairs in manifest order.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.routes
            .iter()
            .map(|r| (r.pattern.as_str(), r.component.as_str()))
    }

    /// Finds the most specific route for `path` (the URI path, without the
    /// query).
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        self.routes
            .iter()
            .filter_map(|r| r.matches(path).map(|m| (r, m)))
            // `min_by_key` keeps the first of equal keys: manifest order
            // breaks ties.
            .min_by_key(|(r, _)| r.rank())
            .map(|(route, (params, path_info))| RouteMatch {
                component: route.component.clone(),
                matched_route: route.pattern.clone(),
                component_route: route.component_route(),
                path_info: path_info.to_owned(),
                params,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new([
            ("/api/videos/...", "videos"),
            ("/health", "health"),
            ("/api/videos/:id/meta", "meta"),
            ("/api/...", "api"),
            ("/video/:id", "player"),
            ("/video/latest", "latest"),
            ("/...", "fallback"),
        ])
        .unwrap()
    }

    fn component(path: &str) -> Option<String> {
        router().route(path).map(|m| m.component)
    }

    #[test]
    fn exact_routes() {
        assert_eq!(component("/health").as_deref(), Some("health"));
        assert_eq!(component("/health/").as_deref(), Some("health"));
        let m = router().route("/health").unwrap();
        assert_eq!(m.path_info, "");
        assert_eq!(m.component_route, "/health");
    }

    #[test]
    fn wildcards_match_prefix_and_below_longest_first() {
        assert_eq!(component("/api/videos").as_deref(), Some("videos"));
        assert_eq!(component("/api/videos/").as_deref(), Some("videos"));
        assert_eq!(component("/api/videos/abc/x").as_deref(), Some("videos"));
        assert_eq!(component("/api/other").as_deref(), Some("api"));
        assert_eq!(component("/api/videosX").as_deref(), Some("api"));
        assert_eq!(component("/elsewhere").as_deref(), Some("fallback"));
        assert_eq!(component("/").as_deref(), Some("fallback"));

        let m = router().route("/api/videos/abc/x").unwrap();
        assert_eq!(m.matched_route, "/api/videos/...");
        assert_eq!(m.component_route, "/api/videos");
        assert_eq!(m.path_info, "/abc/x");
        let m = router().route("/anything/here").unwrap();
        assert_eq!(m.component_route, "/");
        assert_eq!(m.path_info, "/anything/here");
    }

    #[test]
    fn parameters_match_one_segment_and_beat_wildcards() {
        let m = router().route("/video/42").unwrap();
        assert_eq!(m.component, "player");
        assert_eq!(m.params, vec![("id".to_string(), "42".to_string())]);
        assert_eq!(component("/video/42/more").as_deref(), Some("fallback"));
        assert_eq!(component("/video/latest").as_deref(), Some("latest"));
        assert_eq!(component("/api/videos/7/meta").as_deref(), Some("meta"));
    }

    #[test]
    fn no_match_without_fallback() {
        let r = Router::new([("/health", "h"), ("/api/...", "a")]).unwrap();
        assert_eq!(r.route("/nope"), None);
        assert_eq!(r.route("/healthz"), None);
        assert_eq!(r.route("/"), None);
    }

    #[test]
    fn root_route_is_exact() {
        let r = Router::new([("/", "root")]).unwrap();
        assert!(r.route("/").is_some());
        assert!(r.route("/x").is_none());
    }

    #[test]
    fn invalid_and_duplicate_routes_are_rejected() {
        assert!(Router::new([("health", "h")]).is_err());
        assert!(Router::new([("/a/.../b", "h")]).is_err());
        assert!(Router::new([("/a/:", "h")]).is_err());
        assert!(Router::new([("/a", "x"), ("/a/", "y")]).is_err());
        assert!(Router::new([("/a", "x"), ("/a/...", "y")]).is_ok());
    }
}
