"""The registry's outside formats: office workbooks (.xlsx) and boundary files (GeoJSON, zipped
shapefiles), read into a candidate registry with every problem located by sheet, row and column
in Chinese, compared with the current registry (the diff preview), and written back.

I/O beside the registry, never in an alert's path: the engine only ever sees a validated
`RegistryData`, applied through `warnbus.state.registrybook` and picked up by every process
(`warnbus.runtime.live_registry`).

    cells      one cell as people type it: text, phone, yes/no, region code
    sheets     the sheets and their columns (one per record kind; the extension point)
    sandbox    parsing an uploaded file in a child process with memory and time limits
    workbook   rows -> records, cross-checked, merged with the current registry
    boundaries GeoJSON / shapefile -> grid rings in WGS 84 (CGCS2000, Gauss-Kruger, GCJ-02)
    gcj02      the GCJ-02 <-> WGS-84 conversion
    diff       what a change adds, changes and removes
    export     the registry (or an empty template) as a workbook
"""
