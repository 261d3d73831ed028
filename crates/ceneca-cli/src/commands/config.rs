use clap::Subcommand;

use crate::config::{Config, EXAMPLE};

#[derive(Subcommand)]
pub enum Action {
    /// Print a commented ceneca.toml with every setting and its default.
    Example,
    /// Print the configuration in effect (flags, environment, file, the edition's preset
    /// and defaults merged), in sections, secrets masked, each value with where it came
    /// from.
    Show,
}

/// `config example`: needs no configuration, so a broken one can be fixed from it.
pub fn example() {
    print!("{EXAMPLE}");
}

/// `config show`: TOML that loads back to the same configuration, each value followed by
/// a comment naming its origin.
pub fn show(config: &Config) -> anyhow::Result<()> {
    print!("{}", render(config)?);
    Ok(())
}

fn render(config: &Config) -> anyhow::Result<String> {
    let shown = toml::Value::try_from(config.masked())?;
    let mut out = String::new();
    let origin = |key: &str| {
        config
            .origins
            .get(key)
            .map_or("default", String::as_str)
            .to_owned()
    };
    let toml::Value::Table(table) = shown else {
        anyhow::bail!("the configuration is not a table");
    };
    for (key, value) in table.iter().filter(|(_, v)| !v.is_table()) {
        out.push_str(&format!("{key} = {value}  # {}\n", origin(key)));
    }
    for (section, value) in table.iter().filter(|(_, v)| v.is_table()) {
        out.push_str(&format!("\n[{section}]\n"));
        if let toml::Value::Table(entries) = value {
            for (key, value) in entries {
                let path = format!("{section}.{key}");
                out.push_str(&format!("{key} = {value}  # {}\n", origin(&path)));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_configuration_loads_back_and_names_origins() {
        let mut config = Config {
            edition: ceneca_domain::Edition::ZeroSync,
            ..Config::default()
        };
        config.audit.level = ceneca_domain::audit::AuditLevel::Maximum;
        config
            .origins
            .insert("audit.level".into(), "zero-sync edition preset".into());
        let text = render(&config).unwrap();
        assert!(
            text.contains("level = \"maximum\"  # zero-sync edition preset"),
            "{text}"
        );
        assert!(
            text.contains("edition = \"zero-sync\"  # default"),
            "{text}"
        );
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back.audit.level, config.audit.level);
        assert_eq!(back.edition, config.edition);
    }
}
