"""dashgen: EC2 cost-and-performance dashboards for Grafana, as code.

Importing the package is cheap on purpose: `dashgen --version` and the build path must not pull in
boto3, requests or psycopg. Heavy modules import them lazily inside the functions that talk to the world.
"""

__version__ = "0.1.0"
