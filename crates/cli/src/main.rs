//! `egress`: the command-line front end.

fn main() {
    println!("egress");
}
