//! JSON paths for errors and warnings (`settings.policies.fast-ab.links["eth0.100"].mode`).

/// `parent` extended by object key `key`. Keys that would make the dotted form ambiguous are quoted.
pub(crate) fn child(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key.chars().all(|c| !(c == '.' || c == '[' || c == ']' || c == '"' || c.is_whitespace() || c.is_control()));
    if plain {
        if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
    } else {
        // A JSON string literal is an unambiguous way to write any key.
        let quoted = serde_json::Value::String(key.to_string()).to_string();
        format!("{parent}[{quoted}]")
    }
}

/// `parent` extended by array index `index`.
pub(crate) fn index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_quoted_keys() {
        assert_eq!(child("", "settings"), "settings");
        assert_eq!(child("settings", "policies"), "settings.policies");
        assert_eq!(child("a.links", "eth0.100"), "a.links[\"eth0.100\"]");
        assert_eq!(child("a", ""), "a[\"\"]");
        assert_eq!(child("a", "we\"ird"), "a[\"we\\\"ird\"]");
        assert_eq!(index("a.b", 3), "a.b[3]");
    }
}
