fn main() -> anyhow::Result<()> {
    anyhow::bail!("ferry: the daemon is not built yet (issue #3)")
}
