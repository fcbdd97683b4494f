"""Loads an OGC API Features collection in headless QGIS through a Basic
authentication configuration, as GIS staff on QGIS 3.22 LTR do, and writes
what QGIS saw as JSON.

Usage: qgis_oapif.py URL TYPENAME USERNAME PASSWORD PAGE_SIZE OUT.json

The auth database is the one in QGIS_AUTH_DB_DIR_PATH (the Go test gives a
temporary directory), protected by a master password set here.
"""

import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402  (after the environment is set)
    Qgis,
    QgsApplication,
    QgsAuthMethodConfig,
    QgsVectorLayer,
)


def load(url, typename, username, password, page_size, result):
    """Stores a Basic configuration and reads the layer through it. The
    layer lives only in here: freed after exitQgis, it would crash."""
    am = QgsApplication.authManager()
    result["auth_methods"] = sorted(am.authMethodsKeys())
    if not am.setMasterPassword("gridwatch-test-master", True):
        raise RuntimeError("could not set the auth database's master password")
    cfg = QgsAuthMethodConfig()
    cfg.setName("gridwatch")
    cfg.setMethod("Basic")
    cfg.setConfig("username", username)
    cfg.setConfig("password", password)
    if not am.storeAuthenticationConfig(cfg):
        raise RuntimeError("could not store the Basic configuration")
    result["authcfg"] = cfg.id()

    # pageSize makes QGIS page as it does through a large layer, so the
    # credential is sent (and checked) on every page.
    uri = "url=%s typename=%s pageSize=%s authcfg=%s" % (url, typename, page_size, cfg.id())
    layer = QgsVectorLayer(uri, typename, "OAPIF")
    result["valid"] = layer.isValid()
    if layer.isValid():
        ids = set()
        n = 0
        for f in layer.getFeatures():
            n += 1
            ids.add(f.id())
        result["features"] = n
        result["ids"] = len(ids)
        result["fields"] = [f.name() for f in layer.fields()]
    provider = layer.dataProvider()
    if provider is not None and not provider.error().isEmpty():
        result["error"] = provider.error().summary()


def main():
    url, typename, username, password, page_size, out = sys.argv[1:7]
    result = {"qgis": Qgis.QGIS_VERSION, "valid": False, "features": 0, "ids": 0, "error": ""}
    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    try:
        load(url, typename, username, password, page_size, result)
    finally:
        with open(out, "w", encoding="utf-8") as fh:
            json.dump(result, fh)
    app.exitQgis()


if __name__ == "__main__":
    main()
