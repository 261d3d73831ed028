//! Orchestration flow definitions: steps that call a provider with a prompt template and may
//! depend on earlier steps. A definition must describe a runnable graph: unique keys, known
//! dependencies, no cycles.

use std::collections::{HashMap, HashSet};

use serde_json::Value as Json;

/// The most steps a flow may have.
pub const MAX_STEPS: usize = 200;

/// Checks a flow `definition`; the error names the offending step.
pub fn validate_definition(definition: &Json) -> Result<(), String> {
    let steps = definition
        .get("steps")
        .and_then(Json::as_array)
        .ok_or("must have a \"steps\" array")?;
    if steps.is_empty() || steps.len() > MAX_STEPS {
        return Err(format!("must have between 1 and {MAX_STEPS} steps"));
    }
    let mut keys = HashSet::new();
    let mut deps: HashMap<&str, Vec<&str>> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        let text = |name: &str| {
            step.get(name)
                .and_then(Json::as_str)
                .filter(|s| !s.trim().is_empty())
                .ok_or(format!("steps[{i}].{name} must be a non-empty string"))
        };
        let key = text("key")?;
        if key.len() > 100 {
            return Err(format!("steps[{i}].key must be at most 100 characters"));
        }
        text("provider")?;
        text("model")?;
        if !step.get("prompt_template").is_some_and(Json::is_string) {
            return Err(format!("steps[{i}].prompt_template must be a string"));
        }
        if !keys.insert(key) {
            return Err(format!("steps[{i}].key '{key}' is used by another step"));
        }
        let depends_on = match step.get("depends_on") {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Array(items)) => items
                .iter()
                .map(|d| {
                    d.as_str()
                        .ok_or(format!("steps[{i}].depends_on must list step keys"))
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => {
                return Err(format!(
                    "steps[{i}].depends_on must be an array of step keys"
                ));
            }
        };
        deps.insert(key, depends_on);
    }
    for (key, on) in &deps {
        if let Some(missing) = on.iter().find(|d| !keys.contains(*d)) {
            return Err(format!("step '{key}' depends on unknown step '{missing}'"));
        }
    }
    // Kahn's algorithm: whatever cannot be ordered is on a cycle.
    let mut remaining: HashMap<&str, usize> = deps.iter().map(|(k, on)| (*k, on.len())).collect();
    let mut ready: Vec<&str> = remaining
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(k, _)| *k)
        .collect();
    while let Some(done) = ready.pop() {
        remaining.remove(done);
        for (key, on) in &deps {
            if on.contains(&done)
                && let Some(n) = remaining.get_mut(key)
            {
                *n -= on.iter().filter(|d| **d == done).count();
                if *n == 0 {
                    ready.push(key);
                }
            }
        }
    }
    if let Some(key) = remaining.keys().min() {
        return Err(format!("step '{key}' is part of a dependency cycle"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(key: &str, deps: &[&str]) -> Json {
        json!({"key": key, "provider": "openai", "model": "m", "prompt_template": "{{input}}", "depends_on": deps})
    }

    #[test]
    fn accepts_a_dag() {
        let d = json!({"steps": [step("a", &[]), step("b", &["a"]), step("c", &["a", "b"])]});
        assert_eq!(validate_definition(&d), Ok(()));
    }

    #[test]
    fn refuses_cycles_unknown_steps_and_duplicates() {
        let cyc = json!({"steps": [step("a", &["b"]), step("b", &["a"])]});
        assert!(validate_definition(&cyc).unwrap_err().contains("cycle"));
        let unknown = json!({"steps": [step("a", &["zz"])]});
        assert!(
            validate_definition(&unknown)
                .unwrap_err()
                .contains("unknown step 'zz'")
        );
        let dup = json!({"steps": [step("a", &[]), step("a", &[])]});
        assert!(
            validate_definition(&dup)
                .unwrap_err()
                .contains("used by another")
        );
        assert!(validate_definition(&json!({"steps": []})).is_err());
        assert!(validate_definition(&json!({})).is_err());
    }
}
