//! Prints the ZeroDowntimeRollout CRD as YAML: `cargo run --bin crdgen > crds/zerodowntimerollouts.yaml`.

fn main() {
    print!("{}", zdr::crd::crd_yaml());
}
