//! The shipped deployment agrees with the binary: no cluster runs here, so this reads
//! `deploy/kubernetes/*.yaml` and `deploy/Dockerfile` and checks them against what `aigw`
//! really does: its ports, probe paths, environment names, drain timeout and config path,
//! and that the ConfigMap's decK file passes `aigw check` with the Secret's variables set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

const AIGW: &str = env!("CARGO_BIN_EXE_aigw");

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Every Kubernetes object in `deploy/kubernetes`, by `kind/name`.
fn objects() -> BTreeMap<String, Value> {
    let mut found = BTreeMap::new();
    let dir = deploy_dir().join("kubernetes");
    for entry in std::fs::read_dir(&dir).expect("deploy/kubernetes exists") {
        let path = entry.expect("a directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
            let kind = value["kind"].as_str().unwrap_or_default().to_owned();
            let name = value["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            found.insert(format!("{kind}/{name}"), value);
        }
    }
    found
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

fn port_of(address: &str) -> u64 {
    address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{address:?} names no port"))
}

#[test]
fn the_manifests_agree_with_the_binary() {
    let objects = objects();
    let get = |key: &str| {
        objects
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing; have {:?}", objects.keys()))
    };
    let deployment = get("Deployment/aigw");
    assert!(deployment["spec"]["replicas"].as_u64().unwrap_or(0) >= 2);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];

    // Environment: every AIGW_ name is a setting the binary reads; the others are the AWS
    // SDK's or named by the decK file's vault references.
    let env: BTreeMap<&str, &Value> = container["env"]
        .as_sequence()
        .expect("env list")
        .iter()
        .map(|e| (text(&e["name"]), e))
        .collect();
    let deck = text(&get("ConfigMap/aigw-config")["data"]["kong.yaml"]).to_owned();
    for name in env.keys() {
        if let Some(setting) = name.strip_prefix("AIGW_") {
            assert!(
                aigw_config::ENV_KEYS.contains(&setting.to_ascii_lowercase().as_str()),
                "{name} is not a setting aigw reads"
            );
        } else if !name.starts_with("AWS_") {
            let vault = format!(
                "{{vault://env/{}}}",
                name.to_ascii_lowercase().replace('_', "-")
            );
            assert!(
                deck.contains(&vault),
                "{name} is not read by the decK file ({vault})"
            );
        }
    }
    let value = |name: &str| text(&env[name]["value"]).to_owned();

    // Config path: AIGW_CONFIG is the ConfigMap's key where its volume is mounted.
    let mount = container["volumeMounts"]
        .as_sequence()
        .and_then(|m| m.iter().find(|m| text(&m["name"]) == "config"))
        .expect("the config volume is mounted");
    let config_path = value("AIGW_CONFIG");
    assert_eq!(
        config_path,
        format!("{}/kong.yaml", text(&mount["mountPath"]))
    );
    let volume = pod["volumes"]
        .as_sequence()
        .and_then(|v| v.iter().find(|v| text(&v["name"]) == "config"))
        .expect("the config volume");
    assert_eq!(text(&volume["configMap"]["name"]), "aigw-config");

    // Ports: the container's ports are the listeners' ports.
    let ports: BTreeMap<&str, u64> = container["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                text(&p["name"]),
                p["containerPort"].as_u64().expect("a port"),
            )
        })
        .collect();
    let data_port = port_of(&value("AIGW_LISTEN"));
    assert_eq!(ports["http"], data_port);
    assert_eq!(ports["status"], port_of(&value("AIGW_STATUS_LISTEN")));
    assert_eq!(
        u64::from(aigw_config::Settings::default().listen.port()),
        data_port,
        "the binary's default data port"
    );

    // Probes: /health on the data port (the path the binary reserves there) and the gRPC
    // health service on the same port.
    for probe in ["readinessProbe", "startupProbe"] {
        assert_eq!(
            text(&container[probe]["httpGet"]["path"]),
            "/health",
            "{probe}"
        );
        assert_eq!(
            text(&container[probe]["httpGet"]["port"]),
            "http",
            "{probe}"
        );
    }
    assert_eq!(
        container["livenessProbe"]["grpc"]["port"].as_u64(),
        Some(data_port)
    );

    // Shutdown: the grace period covers the preStop pause and the whole drain.
    let drain_ms: u64 = value("AIGW_DRAIN_TIMEOUT_MS").parse().expect("a number");
    let pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .expect("a preStop pause");
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("a grace period");
    assert!(
        grace * 1000 > drain_ms + pause * 1000,
        "{grace} s vs {drain_ms} ms + {pause} s"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));

    // Service: one port for HTTP and gRPC, with its protocol named.
    let service = get("Service/aigw");
    assert_eq!(&service["spec"]["selector"], labels);
    let port = &service["spec"]["ports"][0];
    assert_eq!(text(&port["targetPort"]), "http");
    assert_eq!(text(&port["appProtocol"]), "kubernetes.io/h2c");

    // Secret: every secretKeyRef names a key it has.
    let secret = &get("Secret/aigw-secrets")["stringData"];
    for (name, entry) in &env {
        let reference = &entry["valueFrom"]["secretKeyRef"];
        if !reference.is_null() {
            assert_eq!(text(&reference["name"]), "aigw-secrets");
            assert!(
                !secret[text(&reference["key"])].is_null(),
                "{name}'s key is in the Secret"
            );
        }
    }
    assert!(!secret["REDIS_PASSWORD"].is_null() && !secret["AWS_SECRET_ACCESS_KEY"].is_null());

    // The decK file's Redis is the demo Redis's Service.
    let redis = get("Service/aigw-redis");
    assert!(deck.contains(&format!("host: {}", text(&redis["metadata"]["name"]))));
    assert!(deck.contains(&format!(
        "port: {}",
        redis["spec"]["ports"][0]["port"].as_u64().unwrap_or(0)
    )));

    // PDB and HPA point at the Deployment.
    assert_eq!(
        &get("PodDisruptionBudget/aigw")["spec"]["selector"]["matchLabels"],
        labels
    );
    let hpa = &get("HorizontalPodAutoscaler/aigw")["spec"];
    assert_eq!(text(&hpa["scaleTargetRef"]["name"]), "aigw");
    assert!(hpa["minReplicas"].as_u64().unwrap_or(0) >= 2);

    // The decK file loads in the binary with the Secret's variables set.
    let file = std::env::temp_dir().join(format!("aigw-deploy-{}.yaml", std::process::id()));
    std::fs::write(&file, &deck).expect("writes the deck");
    let mut check = Command::new(AIGW);
    check
        .arg("check")
        .env("AIGW_CONFIG", &file)
        .env("OTEL_SDK_DISABLED", "true");
    for (name, value) in secret.as_mapping().expect("stringData") {
        check.env(text(name), text(value));
    }
    let output = check.output().expect("aigw runs");
    let _ = std::fs::remove_file(&file);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("ai-rate-limiting-advanced"), "{stdout}");
    assert!(stdout.contains("acl: allows"), "{stdout}");
}

#[test]
fn the_image_runs_aigw_as_a_non_root_user_with_the_manifests_paths() {
    let dockerfile = std::fs::read_to_string(deploy_dir().join("Dockerfile")).expect("Dockerfile");
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
    assert!(
        lines.iter().filter(|l| l.starts_with("FROM ")).count() >= 2,
        "multi-stage"
    );
    assert!(dockerfile.contains("cargo build --release --locked -p aigw"));
    let entrypoint = lines
        .iter()
        .find(|l| l.starts_with("ENTRYPOINT"))
        .expect("an entrypoint");
    assert!(entrypoint.contains("/usr/local/bin/aigw"), "{entrypoint}");
    let user = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("USER "))
        .expect("a USER");
    assert!(!user.contains(" 0") && !user.contains("root"), "{user}");
    // The image's defaults are the Deployment's.
    let objects = objects();
    let container = &objects["Deployment/aigw"]["spec"]["template"]["spec"]["containers"][0];
    for item in container["env"].as_sequence().expect("env") {
        let name = text(&item["name"]);
        if ["AIGW_CONFIG", "AIGW_LISTEN", "AIGW_STATUS_LISTEN"].contains(&name) {
            let setting = format!("{name}={}", text(&item["value"]));
            assert!(dockerfile.contains(&setting), "{setting} in the Dockerfile");
        }
    }
    for port in container["ports"].as_sequence().expect("ports") {
        let exposed = port["containerPort"].as_u64().expect("a port").to_string();
        let expose = lines
            .iter()
            .find(|l| l.starts_with("EXPOSE"))
            .expect("EXPOSE");
        assert!(
            expose.split_whitespace().any(|p| p == exposed),
            "{exposed} exposed"
        );
    }
}
