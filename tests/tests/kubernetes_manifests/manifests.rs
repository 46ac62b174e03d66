//! Reading the example: its files, YAML (through PyYAML, YAML 1.1 as kubectl reads it) as JSON,
//! `kubernetes-validate`, and lookups of resources by kind and name.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

/// The Kubernetes version the manifests must be valid for (MicroK8s 1.33 and later).
const KUBERNETES_VERSION: &str = "1.33.0";
/// Kinds whose `spec.template` is a pod template.
const WORKLOADS: [&str; 4] = ["DaemonSet", "StatefulSet", "Deployment", "Job"];

/// `examples/kubernetes/` of this repository.
pub(crate) fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kubernetes")
}

/// Every manifest of the example (`*.yaml` but the kustomization), sorted.
pub(crate) fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        let name = file_name(&path);
        if (name.ends_with(".yaml") || name.ends_with(".yml")) && name != "kustomization.yaml" {
            files.push(path);
        }
    }
    files.sort();
    ensure!(!files.is_empty(), "no manifests in {}", dir.display());
    Ok(files)
}

/// The last component of `path`, lossily as UTF-8.
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn require_python_module(module: &str, package: &str) -> Result<()> {
    let imported = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stderr(Stdio::null())
        .status()
        .context("run python3")?
        .success();
    ensure!(
        imported,
        "python3 cannot import {module}: pip install {package} (tests/run does)"
    );
    Ok(())
}

/// Runs `kubernetes-validate --strict` on `files` and returns how many resources passed. Fails
/// unless the exit code is 0 and every resource passed against the 1.33 schemas: the tool only
/// warns (exit 0) about a kind or apiVersion it has no schema for, which here is an error.
pub(crate) fn kubernetes_validate(files: &[PathBuf]) -> Result<usize> {
    require_python_module("kubernetes_validate", "kubernetes-validate")?;
    let out = Command::new("python3")
        .args(["-m", "kubernetes_validate", "-k", KUBERNETES_VERSION, "--strict"])
        .args(files)
        .output()
        .context("run python3 -m kubernetes_validate")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let passed = |line: &str| {
        line.starts_with("INFO ") && line.contains(" passed for resource ") && line.ends_with(" against version 1.33")
    };
    let problems: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty() && !passed(l)).collect();
    if !out.status.success() || !problems.is_empty() {
        bail!(
            "kubernetes-validate ({}):\n{}\n{}",
            out.status,
            problems.join("\n"),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout.lines().filter(|l| passed(l)).count())
}

/// Every document of a YAML stream as JSON (empty documents skipped).
pub(crate) fn parse_yaml(text: &str) -> Result<Vec<Value>> {
    require_python_module("yaml", "PyYAML")?;
    let script = "import json, sys, yaml\n\
                  json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout, default=str)";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("run python3")?;
    child
        .stdin
        .take()
        .context("python3 stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "YAML does not parse:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The string at a JSON pointer, or an error naming it.
pub(crate) fn text<'a>(value: &'a Value, pointer: &str) -> Result<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .with_context(|| format!("no string at {pointer}"))
}

/// The array at a JSON pointer; empty when absent.
pub(crate) fn list<'a>(value: &'a Value, pointer: &str) -> &'a [Value] {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The strings of the array at a JSON pointer; empty when absent.
pub(crate) fn strings(value: &Value, pointer: &str) -> Vec<String> {
    list(value, pointer)
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// The example's resources, in file order.
#[derive(Clone)]
pub(crate) struct Manifests {
    pub(crate) docs: Vec<Value>,
}

impl Manifests {
    /// Reads every manifest of `dir`.
    pub(crate) fn load(dir: &Path) -> Result<Manifests> {
        let mut docs = Vec::new();
        for file in manifest_files(dir)? {
            let yaml = std::fs::read_to_string(&file)?;
            docs.extend(parse_yaml(&yaml).with_context(|| file.display().to_string())?);
        }
        Ok(Manifests { docs })
    }

    /// The resources of one kind.
    pub(crate) fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.docs.iter().filter(|d| d["kind"] == kind).collect()
    }

    /// The resource of `kind` named `name` in `namespace` (`None`: cluster-scoped).
    pub(crate) fn get(&self, kind: &str, namespace: Option<&str>, name: &str) -> Result<&Value> {
        self.of_kind(kind)
            .into_iter()
            .find(|d| d["metadata"]["name"] == name && d["metadata"]["namespace"].as_str() == namespace)
            .with_context(|| format!("no {kind} {name} in namespace {namespace:?}"))
    }

    /// The resource of `kind` named `name`, to break it in a test.
    pub(crate) fn get_mut(&mut self, kind: &str, name: &str) -> Result<&mut Value> {
        self.docs
            .iter_mut()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .with_context(|| format!("no {kind} {name}"))
    }

    /// Workloads with their namespace and pod template.
    pub(crate) fn pod_templates(&self) -> Vec<(&Value, &str, &Value)> {
        WORKLOADS
            .iter()
            .flat_map(|kind| self.of_kind(kind))
            .map(|w| {
                (
                    w,
                    w["metadata"]["namespace"].as_str().unwrap_or("default"),
                    &w["spec"]["template"],
                )
            })
            .collect()
    }

    /// The container running `binary` (by image name), with its workload.
    pub(crate) fn container_of(&self, binary: &str) -> Result<(&Value, &Value)> {
        self.pod_templates()
            .into_iter()
            .flat_map(|(w, _, t)| list(t, "/spec/containers").iter().map(move |c| (w, c)))
            .find(|(_, c)| {
                c["image"]
                    .as_str()
                    .is_some_and(|i| i.starts_with(&format!("trawl/{binary}:")))
            })
            .with_context(|| format!("no container runs {binary}"))
    }

    /// The keys of a Secret (`data` and `stringData`) or ConfigMap (`data`).
    pub(crate) fn keys(&self, kind: &str, namespace: &str, name: &str) -> Result<BTreeSet<String>> {
        let doc = self.get(kind, Some(namespace), name)?;
        Ok(["data", "stringData", "binaryData"]
            .iter()
            .filter_map(|k| doc[k].as_object())
            .flat_map(|m| m.keys().cloned())
            .collect())
    }

    /// The agent config inside its ConfigMap.
    pub(crate) fn agent_config(&self) -> Result<&str> {
        text(
            self.get("ConfigMap", Some("monitoring"), "trawl-agent-config")?,
            "/data/agent.yml",
        )
    }
}

/// `--name=value` arguments of a container as (name, value).
pub(crate) fn flags(container: &Value) -> Vec<(String, String)> {
    strings(container, "/args")
        .into_iter()
        .filter_map(|a| a.strip_prefix("--").map(str::to_owned))
        .map(|a| match a.split_once('=') {
            Some((n, v)) => (format!("--{n}"), v.to_owned()),
            None => (format!("--{a}"), String::new()),
        })
        .collect()
}

/// `$(NAME)` references in a string (Kubernetes expands them from the container's env).
pub(crate) fn env_references(s: &str) -> Vec<&str> {
    s.split("$(")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(name, _)| name))
        .collect()
}
