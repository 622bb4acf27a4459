"""Session-wide test plugins: the real servers that store tests start themselves."""

pytest_plugins = [
    "tests.servers.redis_servers",
    "tests.servers.dynamodb_servers",
]
