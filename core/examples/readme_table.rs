//! Prints the README's configuration table from `core::config::SETTINGS`
//! (`cargo run -q -p tsp-core --example readme_table`).
fn main() {
    print!("{}", tsp_core::config::readme_table());
}
