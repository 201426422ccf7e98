fn main() {
    // New migration folders are embedded by `embed_migrations!`; rebuild when they change.
    println!("cargo:rerun-if-changed=migrations");
}
