//! Rebuilds the crate when a file of the embedded web app (`web/`) is added, changed or removed:
//! rust-embed's derive reads the folder, but cargo only tracks it through this line.

fn main() {
    println!("cargo:rerun-if-changed=web");
}
