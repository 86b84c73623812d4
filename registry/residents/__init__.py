"""The register of migrant and temporary residents (流动人口/暂住人口)."""
