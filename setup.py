from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="xcap-wsgi",
    version="0.1.0",
    description="XCAP server (RFC 4825) as framework-agnostic WSGI middleware, Kamailio-compatible storage",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["xcap_wsgi", "xcap_wsgi.*"]),
    package_data={"xcap_wsgi": ["py.typed", "schemas/*.xsd"]},
    install_requires=[
        "werkzeug>=2.3",
        "lxml>=4.9",
        "pymysql>=1.0",
        "gunicorn>=21.2",
    ],
    extras_require={
        "test": ["pytest>=7", "flask>=2.3", "hypothesis>=6"],
    },
    entry_points={"console_scripts": ["xcap-wsgi = xcap_wsgi.cli:main"]},
    classifiers=[
        "Framework :: Flask",
        "Programming Language :: Python :: 3",
        "Topic :: Communications :: Internet Phone",
        "Topic :: Internet :: WWW/HTTP :: WSGI :: Middleware",
        "Typing :: Typed",
    ],
)
