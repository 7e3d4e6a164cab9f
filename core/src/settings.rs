//! # Checks shared by the node's and the hub's settings
//!
//! Plain text checks with bilingual errors naming the field; each binary's
//! config `validate()` calls them at load.

/// Checks an address to listen on: `HOST:PORT`, as the listener takes it.
pub fn check_listen(field: &str, addr: &str) -> Result<(), String> {
    let port_ok = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if port_ok {
        Ok(())
    } else {
        Err(format!(
            "{field} = {addr:?}: not an address of the form HOST:PORT / {field} không phải địa chỉ dạng máy:cổng"
        ))
    }
}

/// The local APIs are not authenticated: they may listen on loopback only.
pub fn check_loopback(field: &str, addr: &str) -> Result<(), String> {
    check_listen(field, addr)?;
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "{field} = {addr:?}: must be a loopback address (127.0.0.1, [::1] or localhost); this API has no authentication / {field} chỉ được nghe trên địa chỉ nội bộ (loopback)"
        ))
    }
}

/// A config file for `init` to write: the documented example `example`
/// (every field's comment kept) with each `field = value` line set to the
/// value in `values`. A field commented out in the example (`# field = …`)
/// stays commented unless `values` has it; a field of `values` the example
/// does not document is appended, so nothing set is ever lost.
pub fn commented(example: &str, values: &toml::Table) -> String {
    let mut out = String::new();
    let mut seen = std::collections::BTreeSet::new();
    for line in example.lines() {
        let field = line
            .trim_start_matches('#')
            .trim_start()
            .split_once(" = ")
            .map(|(k, _)| k)
            .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        match field.and_then(|k| values.get(k).map(|v| (k, v))) {
            Some((k, v)) => {
                out.push_str(&format!("{k} = {v}\n"));
                seen.insert(k.to_owned());
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (k, v) in values {
        if !seen.contains(k) {
            out.push_str(&format!("{k} = {v}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn init_writes_the_example_comments_with_the_values_given() {
        let example =
            "# The port.\nlisten = \"0.0.0.0:7443\"\n\n# Optional.\n# hub_url = \"https://x\"\n";
        let values: toml::Table = toml::from_str("listen = \"127.0.0.1:9\"\nextra = 3").unwrap();
        let text = super::commented(example, &values);
        assert_eq!(
            text,
            "# The port.\nlisten = \"127.0.0.1:9\"\n\n# Optional.\n# hub_url = \"https://x\"\nextra = 3\n"
        );
        let back: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(back, values);
    }

    use super::*;

    #[test]
    fn addresses_are_checked() {
        for ok in ["127.0.0.1:0", "[::1]:7000", "localhost:8080"] {
            check_loopback("api_listen", ok).unwrap();
        }
        for bad in [
            "0.0.0.0:0",
            "10.0.0.5:80",
            "example.org:80",
            "127.0.0.1",
            ":80",
        ] {
            let e = check_loopback("api_listen", bad).unwrap_err();
            assert!(e.contains("api_listen") && e.contains(" / "), "{e}");
        }
        check_listen("listen", "0.0.0.0:7443").unwrap();
        check_listen("listen", "hub.example:7443").unwrap();
        assert!(check_listen("listen", "0.0.0.0:99999").is_err());
    }
}
