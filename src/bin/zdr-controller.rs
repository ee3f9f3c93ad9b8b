//! Placeholder so this branch compiles: the real zdr-controller replaces this file at merge.

fn main() {
    eprintln!("placeholder");
    std::process::exit(1)
}
