//! CPU time and peak memory of processes and threads, read from /proc (Linux).

use std::path::Path;

/// Clock ticks per second of /proc's CPU times (USER_HZ: 100 on every Linux ABI in use).
const TICKS_PER_SEC: f64 = 100.0;

/// User + system CPU seconds of a process (or a thread: `/proc/<pid>/task/<tid>`).
pub fn cpu_seconds(stat_dir: &Path) -> Option<f64> {
    let stat = std::fs::read_to_string(stat_dir.join("stat")).ok()?;
    // The command name may contain spaces: fields start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

/// Peak resident memory (VmHWM) of a process, in bytes.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU seconds of this process's threads, split into (tokio workers: the load generator and
/// the bench's own clients; every other thread: librdkafka and the embedded mock broker).
pub fn own_threads_cpu() -> (f64, f64) {
    let (mut tokio, mut other) = (0.0, 0.0);
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let cpu = cpu_seconds(&task.path()).unwrap_or(0.0);
            if comm.starts_with("tokio") || comm.starts_with("jivapay-bench") {
                tokio += cpu;
            } else {
                other += cpu;
            }
        }
    }
    (tokio, other)
}

/// CPU seconds of the PostgreSQL backends serving `database` (their command line names it),
/// summed. Shared server processes (WAL writer, checkpointer) are not included.
pub fn postgres_backends_cpu(database: &str) -> f64 {
    let mut total = 0.0;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.starts_with("postgres:") && cmdline.split_whitespace().any(|w| w == database) {
            total += cpu_seconds(&entry.path()).unwrap_or(0.0);
        }
    }
    total
}
