//! `scripts/stack` is idempotent (start twice, stop twice) and leaves no process behind. It runs
//! here in a folder and on ports of its own, beside the stack the rest of the suite uses.

use std::net::TcpListener;
use std::process::{Command, Output};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Stack {
    dir: tempdir::Dir,
    pg_port: u16,
    tansu_port: u16,
}

mod tempdir {
    /// A folder under the system's temp dir, removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!(
                "jivapay-stack-test-{}",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            drop(std::fs::remove_dir_all(&self.0));
        }
    }
}

impl Stack {
    fn new() -> Self {
        Self {
            dir: tempdir::Dir::new(),
            pg_port: free_port(),
            tansu_port: free_port(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let script = jivapay_tests::package_file("../scripts/stack");
        let output = Command::new(script)
            .args(args)
            .env("JIVAPAY_STACK_DIR", self.dir.0.join("stack"))
            .env("JIVAPAY_STACK_PG_PORT", self.pg_port.to_string())
            .env("JIVAPAY_STACK_TANSU_PORT", self.tansu_port.to_string())
            .output()
            .expect("scripts/stack runs");
        assert!(
            output.status.success() || args[0] == "status",
            "scripts/stack {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn listening(&self, port: u16) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }

    /// Processes whose command line names this stack's folder or ports (zombies excluded).
    fn leftovers(&self) -> Vec<String> {
        let ps = Command::new("ps")
            .args(["-eo", "stat=,args="])
            .output()
            .unwrap();
        let needles = [
            self.dir.0.display().to_string(),
            format!("127.0.0.1:{}", self.tansu_port),
            format!("-p {}", self.pg_port),
        ];
        String::from_utf8_lossy(&ps.stdout)
            .lines()
            .filter(|l| !l.trim_start().starts_with('Z'))
            .filter(|l| needles.iter().any(|n| l.contains(n.as_str())))
            .map(str::to_owned)
            .collect()
    }
}

#[test]
fn start_twice_stop_twice_leaves_nothing_behind() {
    let stack = Stack::new();
    stack.run(&["start"]);
    let again = stack.run(&["start"]);
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(said.contains("already running"), "{said}");
    assert!(stack.run(&["status"]).status.success());
    assert!(stack.listening(stack.pg_port) && stack.listening(stack.tansu_port));

    let env = String::from_utf8_lossy(&stack.run(&["env"]).stdout).into_owned();
    assert!(
        env.contains(&format!("127.0.0.1:{}/jivapay", stack.pg_port)),
        "{env}"
    );
    assert!(
        env.contains(&format!("127.0.0.1:{}", stack.tansu_port)),
        "{env}"
    );

    stack.run(&["stop"]);
    stack.run(&["stop"]);
    assert!(
        !stack.run(&["status"]).status.success(),
        "status fails once stopped"
    );
    assert!(!stack.listening(stack.pg_port) && !stack.listening(stack.tansu_port));
    // Processes can take a moment to leave the process table after their ports close.
    let mut left = stack.leftovers();
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        left = stack.leftovers();
    }
    assert!(left.is_empty(), "processes left behind: {left:#?}");
}
