//! Command-line words, read option by option: a task's options are a
//! struct, filled by asking for each one by name, and any word left over
//! is an error rather than silently ignored.

use anyhow::{Context as _, bail};

/// The words after the program's name, not yet taken.
pub struct Args {
    words: Vec<String>,
}

impl Args {
    /// The process's arguments.
    pub fn from_env() -> Self {
        Self::new(std::env::args().skip(1))
    }

    /// `words`, as if given on the command line.
    pub fn new(words: impl IntoIterator<Item = String>) -> Self {
        Self {
            words: words.into_iter().collect(),
        }
    }

    /// The first word, taken (the task's name).
    pub fn next_word(&mut self) -> Option<String> {
        (!self.words.is_empty()).then(|| self.words.remove(0))
    }

    /// Whether `--name` was given; takes it.
    pub fn flag(&mut self, name: &str) -> bool {
        let found = self.words.iter().position(|w| w == name);
        found.map(|at| self.words.remove(at)).is_some()
    }

    /// The value after `--name`, taken, if the option was given.
    pub fn value(&mut self, name: &str) -> anyhow::Result<Option<String>> {
        let Some(at) = self.words.iter().position(|w| w == name) else {
            return Ok(None);
        };
        if at + 1 >= self.words.len() {
            bail!("{name} needs a value");
        }
        self.words.remove(at);
        Ok(Some(self.words.remove(at)))
    }

    /// The value after `--name` parsed as a `T`, if given.
    pub fn parsed<T>(&mut self, name: &str) -> anyhow::Result<Option<T>>
    where
        T: std::str::FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        self.value(name)?
            .map(|text| text.parse().with_context(|| format!("{name} {text:?}")))
            .transpose()
    }

    /// Every word not taken yet that is not an option (`SCENARIO...`).
    pub fn positional(&mut self) -> Vec<String> {
        let (options, plain) = std::mem::take(&mut self.words)
            .into_iter()
            .partition(|w| w.starts_with("--"));
        self.words = options;
        plain
    }

    /// Every word not taken yet, as given (passed through to another
    /// program).
    pub fn rest(&mut self) -> Vec<String> {
        std::mem::take(&mut self.words)
    }

    /// Fails if any word was not taken.
    pub fn finish(self) -> anyhow::Result<()> {
        match self.words.first() {
            Some(word) => bail!("unknown option {word:?}"),
            None => Ok(()),
        }
    }
}
