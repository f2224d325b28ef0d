//! A routing table per API: `(method, path pattern) → route`, where a route is a value of the API's own enum
//! (so dispatch is one exhaustive `match`, and a test can walk every route the table holds).
//!
//! Patterns are `/`-separated: a literal segment, `{name}` (one non-empty segment), or `{name…}` (the rest, `/`s
//! included, possibly empty: moby's `{name:.*}`, for image names such as `localhost:5000/a/b`). A `{name…}` takes
//! what lies between the literals before it and the literals after it; an empty one reaches the handler, which
//! answers as dockerd does (`image name cannot be blank`). Routes are tried in table order: list fixed paths (`/images/json`) before the patterns
//! that could also match them (`/images/{name…}`).

use hyper::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seg {
    Lit(&'static str),
    One(&'static str),
    Rest(&'static str),
}

#[derive(Debug)]
pub struct Route<R> {
    pub method: Method,
    pub pattern: &'static str,
    pub route: R,
    segs: Vec<Seg>,
}

/// Values captured by a pattern's `{…}` segments, by name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params(Vec<(&'static str, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Found<'a, R> {
    Route(&'a R, Params),
    /// The path is known, not with this method (Docker answers this like an unknown path).
    WrongMethod,
    NotFound,
}

pub struct Router<R> {
    routes: Vec<Route<R>>,
}

fn parse(pattern: &'static str) -> Vec<Seg> {
    let segs: Vec<Seg> = pattern
        .trim_start_matches('/')
        .split('/')
        .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(v) => match v.strip_suffix('…') {
                Some(name) => Seg::Rest(name),
                None => Seg::One(v),
            },
            None => Seg::Lit(s),
        })
        .collect();
    assert!(
        segs.iter().filter(|s| matches!(s, Seg::Rest(_))).count() <= 1,
        "pattern {pattern}: at most one {{name…}}"
    );
    segs
}

/// Match `segs` against the path's segments; the captures on success.
fn capture(segs: &[Seg], path: &[&str]) -> Option<Params> {
    let mut params = Params::default();
    let one = |seg: &Seg, p: &str, params: &mut Params| match seg {
        Seg::Lit(l) => *l == p,
        Seg::One(n) => {
            params.0.push((n, p.to_string()));
            !p.is_empty()
        }
        Seg::Rest(_) => unreachable!("handled by the caller"),
    };
    match segs.iter().position(|s| matches!(s, Seg::Rest(_))) {
        None => {
            (segs.len() == path.len() && segs.iter().zip(path).all(|(s, p)| one(s, p, &mut params))).then_some(params)
        }
        Some(i) => {
            let after = segs.len() - i - 1;
            // An empty `{name…}` is still one (empty) path segment: `/images/` splits into `images` and ``.
            if path.len() < segs.len() {
                return None;
            }
            let head_ok = segs[..i].iter().zip(&path[..i]).all(|(s, p)| one(s, p, &mut params));
            let tail = &path[path.len() - after..];
            let tail_ok = segs[i + 1..].iter().zip(tail).all(|(s, p)| one(s, p, &mut params));
            let middle = path[i..path.len() - after].join("/");
            let Seg::Rest(name) = segs[i] else { unreachable!() };
            (head_ok && tail_ok).then(|| {
                params.0.push((name, middle));
                params
            })
        }
    }
}

impl<R> Router<R> {
    pub fn new(table: Vec<(Method, &'static str, R)>) -> Router<R> {
        Router {
            routes: table
                .into_iter()
                .map(|(method, pattern, route)| Route {
                    segs: parse(pattern),
                    method,
                    pattern,
                    route,
                })
                .collect(),
        }
    }

    /// The first route of the table whose method and pattern match `path` (already percent-decoded).
    pub fn find(&self, method: &Method, path: &str) -> Found<'_, R> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut known_path = false;
        for r in &self.routes {
            if let Some(params) = capture(&r.segs, &parts) {
                if r.method == *method {
                    return Found::Route(&r.route, params);
                }
                known_path = true;
            }
        }
        if known_path {
            Found::WrongMethod
        } else {
            Found::NotFound
        }
    }

    /// Every route, in table order.
    pub fn routes(&self) -> impl Iterator<Item = &Route<R>> {
        self.routes.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum R {
        List,
        Inspect,
        Tag,
        Delete,
        Ping,
        Events,
    }

    fn router() -> Router<R> {
        Router::new(vec![
            (Method::GET, "/_ping", R::Ping),
            (Method::GET, "/images/json", R::List),
            (Method::GET, "/images/{name…}/json", R::Inspect),
            (Method::POST, "/images/{name…}/tag", R::Tag),
            (Method::DELETE, "/images/{name…}", R::Delete),
            (Method::GET, "/events/{id}", R::Events),
        ])
    }

    fn route(path: &str, m: Method) -> Option<(&'static str, Params)> {
        let r = router();
        match r.find(&m, path) {
            Found::Route(r, p) => Some((
                match r {
                    R::List => "list",
                    R::Inspect => "inspect",
                    R::Tag => "tag",
                    R::Delete => "delete",
                    R::Ping => "ping",
                    R::Events => "events",
                },
                p,
            )),
            _ => None,
        }
    }

    #[test]
    fn names_with_slashes_and_fixed_routes_first() {
        assert_eq!(route("/images/json", Method::GET).unwrap().0, "list");
        let (r, p) = route("/images/localhost:5000/a/b:1/json", Method::GET).unwrap();
        assert_eq!((r, p.get("name")), ("inspect", Some("localhost:5000/a/b:1")));
        let (r, p) = route("/images/busybox@sha256:abc/tag", Method::POST).unwrap();
        assert_eq!((r, p.get("name")), ("tag", Some("busybox@sha256:abc")));
        let (r, p) = route("/images/a/b/json/x", Method::DELETE).unwrap();
        assert_eq!((r, p.get("name")), ("delete", Some("a/b/json/x")));
        // an image literally named `json` is inspectable as /images/json/json
        let (r, p) = route("/images/json/json", Method::GET).unwrap();
        assert_eq!((r, p.get("name")), ("inspect", Some("json")));
        let (r, p) = route("/events/7", Method::GET).unwrap();
        assert_eq!((r, p.get("id")), ("events", Some("7")));
    }

    #[test]
    fn misses() {
        let r = router();
        // an empty name reaches the handler, as with moby's {name:.*}
        assert_eq!(
            route("/images//json", Method::GET).unwrap(),
            ("inspect", Params(vec![("name", String::new())]))
        );
        assert_eq!(
            route("/images/", Method::DELETE).unwrap(),
            ("delete", Params(vec![("name", String::new())]))
        );
        assert_eq!(r.find(&Method::GET, "/images/"), Found::WrongMethod);
        assert_eq!(r.find(&Method::GET, "/nothing"), Found::NotFound);
        assert_eq!(r.find(&Method::GET, "/events/"), Found::NotFound);
        assert_eq!(r.find(&Method::PUT, "/images/json"), Found::WrongMethod);
        assert_eq!(r.find(&Method::GET, "/images/x"), Found::WrongMethod, "DELETE only");
        assert_eq!(r.routes().count(), 6);
    }
}
