//! Tests of the session API's routing of request paths.

use super::*;

#[test]
fn routes() {
    assert!(matches!(parse_route("/sessions"), Route::Sessions));
    assert!(matches!(parse_route("/sessions/"), Route::Sessions));
    assert!(matches!(parse_route("/sessions/stats"), Route::Stats));
    assert!(matches!(parse_route("/sessions/validate"), Route::Validate));
    assert!(matches!(parse_route("/sessions/abc"), Route::One("abc")));
    assert!(matches!(
        parse_route("/sessions/abc/extend"),
        Route::Action("abc", "extend")
    ));
    assert!(matches!(
        parse_route("/sessions/abc/other"),
        Route::NotFound
    ));
    assert!(matches!(
        parse_route("/users/u%201/sessions"),
        Route::User("u%201")
    ));
    assert!(matches!(parse_route("/users//sessions"), Route::NotFound));
    assert!(handles("/users/x/sessions") && handles("/sessions"));
    assert!(!handles("/sessionsx") && !handles("/auth"));
}
