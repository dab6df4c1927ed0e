//! What every generated report shares: a description of the machine it
//! was measured on, and writing a report's section into a Markdown file
//! between its markers, leaving the rest of the file as it was.

use std::path::Path;

/// The machine a measurement ran on, read from `/proc` and the C library.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical CPUs this process may use (`nproc`).
    pub cores: usize,
    /// The first CPU's model name.
    pub cpu: String,
    /// Physical memory, GiB.
    pub memory_gib: f64,
    /// The kernel's release (`uname -r`).
    pub kernel: String,
}

impl Machine {
    /// This machine.
    pub fn this() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown CPU".into());
        // SAFETY: sysconf only reads system constants.
        let (page, pages) = unsafe {
            (
                libc::sysconf(libc::_SC_PAGESIZE),
                libc::sysconf(libc::_SC_PHYS_PAGES),
            )
        };
        Self {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            memory_gib: (page.max(0) as f64) * (pages.max(0) as f64) / (1u64 << 30) as f64,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|r| r.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into()),
        }
    }
}

/// Replaces the section named `name` of the Markdown file at `path` (from
/// `<!-- {name}:start` to `<!-- {name}:end -->`) with `markdown` between
/// fresh markers saying it was `written_by`; appends it when the file has
/// no such section, and creates the file when it is missing.
pub fn write_section(
    path: &Path,
    name: &str,
    written_by: &str,
    markdown: &str,
) -> std::io::Result<()> {
    let current = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    std::fs::write(path, with_section(&current, name, written_by, markdown))
}

/// `current` with its section `name` replaced (see [`write_section`]).
pub fn with_section(current: &str, name: &str, written_by: &str, markdown: &str) -> String {
    let start_marker = format!("<!-- {name}:start");
    let end_marker = format!("<!-- {name}:end -->");
    let section = format!(
        "{start_marker} (written by {written_by}) -->\n{}\n{end_marker}",
        markdown.trim_end_matches('\n')
    );
    let start = current.find(&start_marker);
    let end = start.and_then(|start| {
        current[start..]
            .find(&end_marker)
            .map(|end| start + end + end_marker.len())
    });
    match (start, end) {
        (Some(start), Some(end)) => format!("{}{section}{}", &current[..start], &current[end..]),
        _ => format!("{}\n\n{section}\n", current.trim_end_matches('\n')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_replaced_in_place_and_the_rest_kept() {
        let file = "# Benchmarks\n\n<!-- a:start (written by old) -->\nold\n<!-- a:end -->\n\n\
                    <!-- b:start (written by b) -->\nb\n<!-- b:end -->\n## After\n";
        let updated = with_section(file, "a", "./x bench", "new\n");
        assert_eq!(
            updated,
            "# Benchmarks\n\n<!-- a:start (written by ./x bench) -->\nnew\n<!-- a:end -->\n\n\
             <!-- b:start (written by b) -->\nb\n<!-- b:end -->\n## After\n"
        );
    }

    #[test]
    fn a_missing_section_is_appended() {
        assert_eq!(
            with_section("# Benchmarks\n", "a", "me", "text"),
            "# Benchmarks\n\n<!-- a:start (written by me) -->\ntext\n<!-- a:end -->\n"
        );
    }
}
