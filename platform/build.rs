fn main() {
    // sqlx::migrate! embeds the migrations folder: a new migration must rebuild this crate.
    println!("cargo:rerun-if-changed=../migrations");
}
