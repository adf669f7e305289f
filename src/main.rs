fn main() {
    println!("workerhub");
}
