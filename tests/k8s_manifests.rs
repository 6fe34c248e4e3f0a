//! deploy/kubernetes/: the DaemonSet and the ConfigMap, read into the
//! Kubernetes API types (k8s-openapi) as the API server would, and the fields
//! nslab relies on asserted. No cluster, no root: this is what was checked
//! here (see the README's "Running a lab across a cluster").
//!
//! Kubernetes expands `$(VAR)` in a container's `command`, `args` and `env`
//! only (the API reference of `Container.command` says so; `ExecAction.command`,
//! used by probes and hooks, says "simply exec'd" and nothing of expansion).
//! An exec probe or lifecycle hook runs its command as written, so there
//! the node's name must come from a shell (`sh -c '... "$NODE_NAME"'`); inside
//! `sh -c`, `$(NODE_NAME)` would even be a command substitution.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec};
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::path::Path;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes");

fn read(name: &str) -> String {
    let path = Path::new(DIR).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The YAML straight into the API type (serde-saphyr, as nslab reads its
/// own files); the type's deserializer checks `apiVersion` and `kind`.
fn parse<T: DeserializeOwned>(name: &str) -> T {
    serde_saphyr::from_str(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn daemonset() -> DaemonSet {
    parse("daemonset.yaml")
}

fn configmap() -> ConfigMap {
    parse("configmap.yaml")
}

fn pod(ds: &DaemonSet) -> &PodSpec {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("the DaemonSet has a pod template")
}

fn container(ds: &DaemonSet) -> &Container {
    let p = pod(ds);
    assert_eq!(p.containers.len(), 1, "one container, nslab");
    &p.containers[0]
}

/// Where `$(VAR)` is expanded by Kubernetes (container command/args) or not
/// (exec probes, lifecycle hooks).
#[derive(Clone, Copy, PartialEq)]
enum Expands {
    Kubernetes,
    No,
}

/// The topology file of the `nslab VERB FILE --machine NAME` that `argv`
/// runs, when NAME is the node's name in a form that is expanded where
/// `argv` runs; otherwise why not.
fn invocation(argv: &[String], verb: &str, expands: Expands) -> Result<String, String> {
    // Kubernetes' own expansion, where it applies, happens before anything runs.
    let k8s = "$(NODE_NAME)";
    let (words, via_shell) = match argv {
        [sh, c, script, ..] if (sh == "sh" || sh.ends_with("/sh")) && c == "-c" => {
            let line = script
                .lines()
                .find(|l| l.contains(&format!("nslab {verb} ")))
                .ok_or_else(|| format!("no `nslab {verb}` in the script {script:?}"))?;
            let words = shell_words::split(line).map_err(|e| format!("{line:?}: {e}"))?;
            (words, true)
        }
        _ => (argv.to_vec(), false),
    };
    let at = words
        .windows(2)
        .position(|w| w[0] == "nslab" && w[1] == verb)
        .ok_or_else(|| format!("no `nslab {verb}` in {words:?}"))?;
    let args: Vec<&String> = words[at + 2..]
        .iter()
        .take_while(|w| !matches!(w.as_str(), "&&" | "||" | ";" | "|"))
        .collect();
    let machine = args
        .iter()
        .position(|w| *w == "--machine")
        .and_then(|i| args.get(i + 1))
        .ok_or_else(|| format!("`nslab {verb}` without `--machine NAME`: {args:?}"))?;
    let ok = match (via_shell, expands) {
        // The shell's variable (Kubernetes leaves `$NAME` alone).
        (true, _) if *machine == "$NODE_NAME" || *machine == "${NODE_NAME}" => true,
        // Kubernetes replaced it before the shell (or the program) saw it.
        (_, Expands::Kubernetes) => *machine == k8s,
        _ => false,
    };
    if !ok {
        return Err(format!(
            "--machine {machine}: not the node's name where this runs (Kubernetes expands {k8s} \
             in command/args only; elsewhere use sh -c '... \"$NODE_NAME\"')"
        ));
    }
    let files: Vec<&&String> = args
        .iter()
        .enumerate()
        .filter(|(i, w)| !w.starts_with('-') && (*i == 0 || args[*i - 1] != "--machine"))
        .map(|(_, w)| w)
        .collect();
    match files[..] {
        [f] => Ok(f.to_string()),
        _ => Err(format!("`nslab {verb}` needs one FILE: {args:?}")),
    }
}

fn argv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_checker_refuses_what_kubernetes_would_not_expand() {
    let sh = |s: &str| argv(&["sh", "-c", s]);
    // The forms that work.
    let f = "/etc/nslab/lab.yaml";
    let good = sh("nslab status /etc/nslab/lab.yaml --machine \"$NODE_NAME\"");
    assert_eq!(invocation(&good, "status", Expands::No).unwrap(), f);
    let good = sh("set -e\nnslab up --machine ${NODE_NAME} /etc/nslab/lab.yaml && sleep 1");
    assert_eq!(invocation(&good, "up", Expands::Kubernetes).unwrap(), f);
    let direct = argv(&["nslab", "up", f, "--machine", "$(NODE_NAME)"]);
    assert_eq!(invocation(&direct, "up", Expands::Kubernetes).unwrap(), f);
    // `$(NODE_NAME)` in a probe stays as written.
    let e = invocation(
        &argv(&["nslab", "status", f, "--machine", "$(NODE_NAME)"]),
        "status",
        Expands::No,
    )
    .unwrap_err();
    assert!(e.contains("command/args only"), "{e}");
    // ... and inside sh -c it would run a program called NODE_NAME.
    let subst = sh("nslab down /etc/nslab/lab.yaml --machine $(NODE_NAME)");
    assert!(invocation(&subst, "down", Expands::No).is_err());
    // `$NODE_NAME` without a shell is passed as is.
    let raw = argv(&["nslab", "down", f, "--machine", "$NODE_NAME"]);
    assert!(invocation(&raw, "down", Expands::No).is_err());
    // A fixed name, no --machine, no file, another verb.
    assert!(
        invocation(
            &sh("nslab down x.yaml --machine node-1"),
            "down",
            Expands::No
        )
        .is_err()
    );
    assert!(invocation(&sh("nslab down x.yaml"), "down", Expands::No).is_err());
    assert!(
        invocation(
            &sh("nslab down --machine \"$NODE_NAME\""),
            "down",
            Expands::No
        )
        .is_err()
    );
    assert!(invocation(&good, "down", Expands::Kubernetes).is_err());
}

#[test]
fn daemonset_runs_privileged_on_the_nodes_network_and_pids() {
    let ds = daemonset();
    // The namespace the others live in, applied first (`kubectl apply -f` of
    // the directory goes in file-name order).
    let ns: k8s_openapi::api::core::v1::Namespace = parse("00-namespace.yaml");
    assert_eq!(ns.metadata.name, ds.metadata.namespace);
    assert_eq!(ds.metadata.namespace.as_deref(), Some("nslab"));
    let spec = ds.spec.as_ref().unwrap();
    // The selector picks the template's pods.
    let want = spec.selector.match_labels.clone().unwrap_or_default();
    let have = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert!(!want.is_empty());
    for (k, v) in &want {
        assert_eq!(have.get(k), Some(v), "selector label {k}");
    }
    let p = pod(&ds);
    assert_eq!(p.host_network, Some(true), "hostNetwork");
    assert_eq!(p.host_pid, Some(true), "hostPID");
    // preStop's `nslab down` must have time to finish before SIGKILL.
    assert!(p.termination_grace_period_seconds.unwrap_or(30) >= 60);
    let c = container(&ds);
    let sc = c.security_context.as_ref().expect("securityContext");
    assert_eq!(sc.privileged, Some(true), "privileged");
    assert!(c.image.as_deref().is_some_and(|i| !i.is_empty()));

    // NODE_NAME from the downward API: the node's name, the machine's name.
    let env = c.env.as_deref().unwrap_or_default();
    let node = env
        .iter()
        .find(|e| e.name == "NODE_NAME")
        .expect("env NODE_NAME");
    let field = node
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .expect("NODE_NAME from fieldRef");
    assert_eq!(field.field_path, "spec.nodeName");
    assert!(node.value.is_none());
}

#[test]
fn up_status_and_down_use_the_node_name_and_the_mounted_lab_file() {
    let ds = daemonset();
    let cm = configmap();
    let c = container(&ds);

    let mut main = c.command.clone().unwrap_or_default();
    main.extend(c.args.clone().unwrap_or_default());
    let up = invocation(&main, "up", Expands::Kubernetes).expect("command runs nslab up");

    let probe = c
        .readiness_probe
        .as_ref()
        .and_then(|p| p.exec.as_ref())
        .and_then(|e| e.command.clone())
        .expect("an exec readinessProbe");
    let status = invocation(&probe, "status", Expands::No).expect("the probe runs nslab status");

    let stop = c
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|h| h.exec.as_ref())
        .and_then(|e| e.command.clone())
        .expect("an exec preStop hook");
    let down = invocation(&stop, "down", Expands::No).expect("preStop runs nslab down");

    assert_eq!(up, status);
    assert_eq!(up, down);

    // The file is KEY of the ConfigMap, in the directory it is mounted at.
    let path = Path::new(&up);
    let (dir, key) = (
        path.parent().unwrap().to_str().unwrap(),
        path.file_name().unwrap().to_str().unwrap(),
    );
    let cm_name = cm.metadata.name.clone().expect("ConfigMap name");
    assert_eq!(cm.metadata.namespace, ds.metadata.namespace);
    let p = pod(&ds);
    let vol = p
        .volumes
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|v| v.config_map.as_ref().is_some_and(|c| c.name == cm_name))
        .unwrap_or_else(|| panic!("a volume of ConfigMap {cm_name}"));
    let items = vol.config_map.as_ref().unwrap().items.clone();
    assert!(items.is_none(), "keys mounted under their own names");
    let mount = c
        .volume_mounts
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|m| m.name == vol.name)
        .expect("the ConfigMap volume is mounted");
    assert_eq!(mount.mount_path, dir);
    // A subPath mount would never see the ConfigMap's updates.
    assert!(mount.sub_path.is_none());
    assert!(
        cm.data.as_ref().is_some_and(|d| d.contains_key(key)),
        "ConfigMap {cm_name} has key {key}"
    );
}

#[test]
fn namespaces_and_state_live_on_the_node() {
    let ds = daemonset();
    let p = pod(&ds);
    let c = container(&ds);
    let host_path_of = |mount: &str| {
        let m = c
            .volume_mounts
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|m| m.mount_path == mount)
            .unwrap_or_else(|| panic!("a mount at {mount}"));
        let v = p
            .volumes
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|v| v.name == m.name)
            .unwrap();
        let hp = v.host_path.as_ref().map(|h| h.path.clone());
        (hp, m.mount_propagation.clone(), m.read_only)
    };
    // nslab bind-mounts namespace files there: they must reach the node.
    let (hp, prop, ro) = host_path_of("/run/netns");
    assert_eq!(hp.as_deref(), Some("/run/netns"));
    assert_eq!(prop.as_deref(), Some("Bidirectional"));
    assert_ne!(ro, Some(true));
    // The lab's record (nslab's default state directory), kept across restarts.
    let (hp, _, ro) = host_path_of("/run/nslab");
    assert_eq!(hp.as_deref(), Some("/run/nslab"));
    assert_ne!(ro, Some(true));
}

/// The lab file is nslab's, with the keys and names that must agree with the
/// DaemonSet, and every machine's part of it validates as `up --machine` would.
#[test]
fn the_lab_file_names_its_machines() {
    let cm = configmap();
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get("lab.yaml"))
        .expect("lab.yaml");
    let lab: serde_json::Value = serde_saphyr::from_str(text).expect("lab.yaml is YAML");
    assert!(lab["name"].as_str().is_some_and(|n| !n.is_empty()));
    let machines: BTreeSet<&str> = lab["machines"]
        .as_object()
        .expect("machines:")
        .keys()
        .map(String::as_str)
        .collect();
    assert!(machines.len() >= 2, "a lab across machines: {machines:?}");
    let nodes = lab["nodes"].as_object().expect("nodes:");
    assert!(!nodes.is_empty());
    let mut used = BTreeSet::new();
    for (name, v) in nodes {
        let on = v["on"]
            .as_str()
            .unwrap_or_else(|| panic!("nodes.{name}: no `on:`"));
        used.insert(on);
    }
    assert_eq!(used, machines, "every machine has nodes of the lab");

    // nslab itself: the whole file, then each machine's part.
    let topo = nslab::Topology::from_yaml(text.clone());
    for m in &machines {
        let opts = nslab::Options {
            machine: Some(m.to_string()),
            ..nslab::Options::default()
        };
        if let Err(e) = topo.validate(&opts) {
            panic!("the ConfigMap's lab, machine {m}: {e}");
        }
    }
    // A name that is not a machine of the file is refused.
    let opts = nslab::Options {
        machine: Some("not-a-node".into()),
        ..nslab::Options::default()
    };
    assert!(
        topo.validate(&opts).is_err(),
        "--machine not-a-node must be refused"
    );
}
