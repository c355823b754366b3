use super::*;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn check(text: &str) -> Result<Config, ConfigErrors> {
    Config::from_toml(text, Path::new("test.toml"))
}

const MINIMAL: &str = r#"
[cluster]
id = "HQ"
name = "hq.example.com"

[dialplan]
partitions = ["Directory URI"]

[[css]]
name = "all"
partitions = ["Directory URI"]

[[trunk]]
name = "pbx"
destinations = ["127.0.0.1:5070"]
inbound_css = "all"
"#;

#[test]
fn every_shipped_config_parses_and_validates() {
    let mut seen = 0;
    let mut stack = vec![repo_root().join("config")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                if let Err(e) = Config::read(&path) {
                    panic!("{e}");
                }
                seen += 1;
            }
        }
    }
    assert!(
        seen >= 5,
        "expected the lab and example configs, found {seen}"
    );
}

#[test]
fn misspelt_key_is_refused_with_its_path() {
    let text = MINIMAL.replace(
        "inbound_css = \"all\"",
        "inbound_css = \"all\"\ndestination = \"x\"",
    );
    let err = check(&text).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(err.0[0].key, "trunk[0].destination");
    assert!(
        err.0[0].reason.contains("unknown field `destination`"),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("test.toml: trunk[0].destination: "),
        "{err}"
    );
}

#[test]
fn dangling_references_name_file_key_and_reason() {
    let text = format!(
        "{MINIMAL}\n[[css]]\nname = \"x\"\npartitions = [\"Nope\"]\n\n\
         [[sip_route_pattern]]\npattern = \"br.route\"\npartition = \"Directory URI\"\ntrunk = \"missing\"\n"
    );
    let err = check(&text).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("test.toml: css[1]: "), "{text}");
    assert!(text.contains("Nope"), "{text}");
    assert!(text.contains("test.toml: sip_route_pattern[0]: "), "{text}");
    assert!(text.contains("missing"), "{text}");
}

#[test]
fn bad_values_are_all_reported_at_once() {
    let text = MINIMAL
        .replace("id = \"HQ\"", "id = \"StandAloneCluster\"\nrole = \"hub\"")
        .replace(
            "destinations = [\"127.0.0.1:5070\"]",
            "destinations = []\ntransport = \"sctp\"",
        );
    let err = check(&text).unwrap_err();
    let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
    assert!(keys.contains(&"cluster.id"), "{err}");
    assert!(keys.contains(&"ils"), "a hub needs [ils]: {err}");
    assert!(keys.contains(&"trunk[0].destinations"), "{err}");
    assert!(keys.contains(&"trunk[0].transport"), "{err}");
}

#[test]
fn bad_route_string_and_duration() {
    let text = format!(
        "{}\n[ils]\nroute_string = \"abc-123-def.xyz.com\"\nregistrar = \"127.0.0.1:7501\"\nsync_interval = \"soon\"\npassword = \"p\"\n",
        MINIMAL.replace(
            "name = \"hq.example.com\"",
            "name = \"hq.example.com\"\nrole = \"spoke\""
        )
    );
    let err = check(&text).unwrap_err();
    let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["ils.route_string", "ils.sync_interval"], "{err}");
}

#[test]
fn toml_syntax_error_names_the_file() {
    let err = check("[cluster\nid = 1").unwrap_err();
    assert!(err.to_string().starts_with("test.toml: "), "{err}");
}

#[test]
fn lab_hq_advertises_its_directory() {
    let cfg = Config::read(&repo_root().join("config/lab/hq.toml")).unwrap();
    let adv = cfg.advertised();
    assert!(
        adv.iter()
            .any(|(u, r)| u.as_str() == "alice@hq.example.com" && r.as_str() == "hq.route")
    );
    assert_eq!(cfg.cluster.role, Role::Hub);
    assert_eq!(cfg.sip.listeners.len(), 3);
}
