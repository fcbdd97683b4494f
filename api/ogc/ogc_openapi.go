package ogc

import (
	"net/http"

	"gridwatch/api/httpapi"

	"github.com/gin-gonic/gin"
)

// ogcAPI serves the OpenAPI 3.0 definition of /ogc. Clients read the items
// parameters from it: GDAL takes each collection's queryables from the
// parameters of its own items path.
func (s *Service) ogcAPI(c *gin.Context) error {
	if err := ogcOnlyParams(c, "f"); err != nil {
		return err
	}
	return s.ogcWrite(c, http.StatusOK, mediaOpenAPI, s.ogcOpenAPI(httpapi.Origin(c)+"/ogc"))
}

func ref(name string) gin.H { return gin.H{"$ref": "#/components/parameters/" + name} }

func jsonResponse(desc, mediaType string) gin.H {
	return gin.H{"description": desc, "content": gin.H{mediaType: gin.H{"schema": gin.H{"type": "object"}}}}
}

var ogcErrorResponses = gin.H{
	"400": gin.H{"$ref": "#/components/responses/Error"},
	"401": gin.H{"$ref": "#/components/responses/Error"},
	"403": gin.H{"$ref": "#/components/responses/Error"},
	"404": gin.H{"$ref": "#/components/responses/Error"},
}

func withErrors(ok gin.H) gin.H {
	out := gin.H{"200": ok}
	for k, v := range ogcErrorResponses {
		out[k] = v
	}
	return out
}

// ogcOpenAPI builds the definition; base is the absolute /ogc URL.
func (s *Service) ogcOpenAPI(base string) gin.H {
	get := func(summary, opID string, params []any, ok gin.H) gin.H {
		op := gin.H{"summary": summary, "operationId": opID, "responses": withErrors(ok)}
		if params == nil {
			params = []any{}
		}
		op["parameters"] = params
		return gin.H{"get": op}
	}
	paths := gin.H{
		"/":            get("Landing page", "getLandingPage", []any{ref("f")}, jsonResponse("Links to the API definition, the conformance classes and the collections.", mediaJSON)),
		"/conformance": get("Conformance classes implemented", "getConformance", []any{ref("f")}, jsonResponse("The conformsTo list.", mediaJSON)),
		"/api":         get("This API definition", "getAPI", []any{ref("f")}, jsonResponse("The OpenAPI 3.0 document.", mediaOpenAPI)),
		"/collections": get("The collections the caller may read", "getCollections", []any{ref("f")}, jsonResponse("The collections, with their extents.", mediaJSON)),
	}
	for _, col := range s.ogcCollections() {
		p := "/collections/" + col.id
		items := []any{ref("limit"), ref("bbox"), ref("bbox-crs"), ref("datetime"), ref("crs"), ref("cursor"), ref("f")}
		for _, q := range col.queryables {
			schema := gin.H{"type": q.Type}
			if len(q.Enum) > 0 && !q.Multi {
				schema["enum"] = q.Enum
			}
			items = append(items, gin.H{"name": q.Name, "in": "query", "required": false, "style": "form", "explode": false,
				"description": q.Description, "schema": schema})
		}
		paths[p] = get(col.title+": the collection", "describe_"+col.id, []any{ref("f")}, jsonResponse("The collection.", mediaJSON))
		paths[p+"/queryables"] = get(col.title+": queryable properties", "queryables_"+col.id, []any{ref("f")},
			jsonResponse("A JSON Schema of the properties items may be filtered on.", mediaJSONSchema))
		paths[p+"/items"] = get(col.title+": features", "items_"+col.id, items,
			gin.H{"description": "A page of features (GeoJSON), with numberMatched, numberReturned and a next link while more remain.",
				"headers": gin.H{"Content-Crs": gin.H{"description": "The CRS of the coordinates, as <URI>.", "schema": gin.H{"type": "string"}}},
				"content": gin.H{mediaGeoJSON: gin.H{"schema": gin.H{"$ref": "#/components/schemas/FeatureCollection"}}}})
		paths[p+"/items/{featureId}"] = get(col.title+": one feature", "item_"+col.id, []any{ref("featureId"), ref("crs"), ref("f")},
			gin.H{"description": "The feature (GeoJSON).",
				"headers": gin.H{"Content-Crs": gin.H{"description": "The CRS of the coordinates, as <URI>.", "schema": gin.H{"type": "string"}}},
				"content": gin.H{mediaGeoJSON: gin.H{"schema": gin.H{"$ref": "#/components/schemas/Feature"}}}})
	}
	ogcWriteOperations(paths)
	crsSchema := gin.H{"type": "string", "format": "uri", "enum": ogcCRSURIs(), "default": crs84URI}
	return gin.H{
		"openapi": "3.0.3",
		"info": gin.H{
			"title":       "Gridwatch OGC API Features",
			"version":     s.deps.Version,
			"description": "Grids, incidents and cameras as OGC API Features (Part 1 Core with GeoJSON, Part 2 CRS), and Part 4 (create, replace, update, delete) for grids, under If-Match with the item's ETag. Authenticate with a bearer token or the session cookie.",
		},
		"servers":  []gin.H{{"url": base}},
		"security": []gin.H{{"bearerAuth": []string{}}, {"cookieAuth": []string{}}},
		"paths":    paths,
		"components": gin.H{
			"securitySchemes": gin.H{
				"bearerAuth": gin.H{"type": "http", "scheme": "bearer", "description": "An API token (POST /api/v1/tokens)."},
				"cookieAuth": gin.H{"type": "apiKey", "in": "cookie", "name": httpapi.SessionCookie},
			},
			"parameters": gin.H{
				"f": gin.H{"name": "f", "in": "query", "required": false, "description": "The format: JSON (GeoJSON for features) is the only one.",
					"schema": gin.H{"type": "string", "enum": []string{"json"}}},
				"limit": gin.H{"name": "limit", "in": "query", "required": false, "style": "form", "explode": false,
					"description": "The most features a page holds.",
					"schema":      gin.H{"type": "integer", "minimum": 1, "maximum": ogcMaxLimit, "default": ogcDefaultLimit}},
				"bbox": gin.H{"name": "bbox", "in": "query", "required": false, "style": "form", "explode": false,
					"description": "Features whose geometry's box intersects this one: lower corner then upper corner, in bbox-crs axis order (CRS84: minLon,minLat,maxLon,maxLat).",
					"schema":      gin.H{"type": "array", "minItems": 4, "maxItems": 4, "items": gin.H{"type": "number"}}},
				"bbox-crs": gin.H{"name": "bbox-crs", "in": "query", "required": false, "style": "form", "explode": false,
					"description": "The CRS bbox is given in.", "schema": crsSchema},
				"crs": gin.H{"name": "crs", "in": "query", "required": false, "style": "form", "explode": false,
					"description": "The CRS of the coordinates returned. EPSG:4326 and EPSG:4490 are latitude first.", "schema": crsSchema},
				"datetime": gin.H{"name": "datetime", "in": "query", "required": false, "style": "form", "explode": false,
					"description": "An RFC 3339 instant, or an interval start/end where .. is an open end; both ends are included.",
					"schema":      gin.H{"type": "string"}},
				"cursor": gin.H{"name": "cursor", "in": "query", "required": false,
					"description": "Where a page starts: set by the next link; not for clients to build.", "schema": gin.H{"type": "string"}},
				"featureId": gin.H{"name": "featureId", "in": "path", "required": true, "description": "The feature's id.",
					"schema": gin.H{"type": "integer", "minimum": 1}},
				"If-Match": gin.H{"name": "If-Match", "in": "header", "required": true,
					"description": "The ETag of the version edited, as a GET of the item gave it (\"grid-{id}-v{version}\"). Without it the answer is 428; with an older version's, 412 saying who changed the grid and when.",
					"schema":      gin.H{"type": "string"}},
				"Content-Crs": gin.H{"name": "Content-Crs", "in": "header", "required": false,
					"description": "The CRS of the body's coordinates, as <URI>; CRS84 when absent.",
					"schema":      gin.H{"type": "string", "enum": ogcCRSHeaderValues(), "default": "<" + crs84URI + ">"}},
				"dry_run": gin.H{"name": "dry_run", "in": "query", "required": false,
					"description": "An extension: true previews the change — the topology findings and the cameras and cases it would move — and changes nothing; no If-Match is needed.",
					"schema":      gin.H{"type": "boolean", "default": false}},
			},
			"schemas": gin.H{
				"Feature": gin.H{"type": "object", "required": []string{"type", "geometry", "properties"},
					"properties": gin.H{"type": gin.H{"type": "string", "enum": []string{"Feature"}}, "id": gin.H{"type": "integer"},
						"geometry": gin.H{"type": "object", "nullable": true}, "properties": gin.H{"type": "object"}}},
				"FeatureCollection": gin.H{"type": "object", "required": []string{"type", "features"},
					"properties": gin.H{"type": gin.H{"type": "string", "enum": []string{"FeatureCollection"}},
						"features":       gin.H{"type": "array", "items": gin.H{"$ref": "#/components/schemas/Feature"}},
						"numberMatched":  gin.H{"type": "integer", "minimum": 0},
						"numberReturned": gin.H{"type": "integer", "minimum": 0},
						"timeStamp":      gin.H{"type": "string", "format": "date-time"},
						"links":          gin.H{"type": "array", "items": gin.H{"type": "object"}}}},
				"GridFeature":      gridFeatureSchema(true),
				"GridFeaturePatch": gridFeatureSchema(false),
				"ChangeReport": gin.H{"type": "object", "required": []string{"kind", "dry_run", "committed", "grids", "findings"},
					"properties": gin.H{
						"kind":      gin.H{"type": "string", "enum": []string{"redraw", "rename", "none"}},
						"dry_run":   gin.H{"type": "boolean"},
						"committed": gin.H{"type": "boolean"},
						"grids":     gin.H{"type": "array", "items": gin.H{"type": "object"}},
						"findings": gin.H{"type": "array", "items": gin.H{"type": "object", "properties": gin.H{
							"severity": gin.H{"type": "string", "enum": []string{"error", "warning"}},
							"kind":     gin.H{"type": "string"}, "grid": gin.H{"type": "string"}, "other": gin.H{"type": "string"},
							"area_m2": gin.H{"type": "number"}, "location": gin.H{"type": "array", "items": gin.H{"type": "number"}},
							"message": gin.H{"type": "string"}}}},
						"errors": gin.H{"type": "integer"}, "warnings": gin.H{"type": "integer"},
						"cameras": gin.H{"type": "object"}, "incidents": gin.H{"type": "object"}, "flagged": gin.H{"type": "object"},
						"revision": gin.H{"type": "integer"}}},
			},
			"responses": gin.H{
				"ChangeReport": gin.H{"description": "The change: with dry_run=true its preview; otherwise what was committed, and the new ETag.",
					"headers": gin.H{"ETag": gin.H{"description": "The grid's new version's ETag (not on a preview).", "schema": gin.H{"type": "string"}}},
					"content": gin.H{mediaJSON: gin.H{"schema": gin.H{"$ref": "#/components/schemas/ChangeReport"}}}},
				"Error": gin.H{"description": "An error: {\"error\":{\"code\",\"message\",\"details\"}}.",
					"content": gin.H{mediaJSON: gin.H{"schema": gin.H{"type": "object"}}}},
			},
		},
	}
}

func ogcCRSHeaderValues() []string {
	out := make([]string, len(ogcCRSs))
	for i, c := range ogcCRSs {
		out[i] = "<" + c.URI + ">"
	}
	return out
}

// gridFeatureSchema is the body of a grid write: whole for POST and PUT,
// partial for PATCH.
func gridFeatureSchema(whole bool) gin.H {
	props := gin.H{
		"code":        gin.H{"type": "string", "description": "The grid's code: its parent's code and 3 digits (a district: 6 digits, GB/T 2260). Fixed once created."},
		"name":        gin.H{"type": "string", "minLength": 1, "description": "The grid's name; a change is a new version."},
		"level":       gin.H{"type": "string", "enum": []string{"district", "street", "community", "grid"}, "description": "Fixed once created."},
		"parent_code": gin.H{"type": "string", "nullable": true, "description": "The parent's code; none for a district. Fixed once created."},
		"parent_id":   gin.H{"type": "integer", "nullable": true, "readOnly": true},
		"area_m2":     gin.H{"type": "number", "readOnly": true},
		"version":     gin.H{"type": "integer", "readOnly": true},
		"created_at":  gin.H{"type": "string", "format": "date-time", "readOnly": true},
		"updated_at":  gin.H{"type": "string", "format": "date-time", "readOnly": true},
	}
	geometry := gin.H{"type": "object", "description": "A GeoJSON Polygon or MultiPolygon in Content-Crs.",
		"required":   []string{"type", "coordinates"},
		"properties": gin.H{"type": gin.H{"type": "string", "enum": []string{"Polygon", "MultiPolygon"}}, "coordinates": gin.H{"type": "array"}}}
	properties := gin.H{"type": "object", "properties": props, "additionalProperties": true,
		"description": "Other properties are kept from a create; a replace or update may send them only unchanged."}
	s := gin.H{"type": "object", "properties": gin.H{
		"type": gin.H{"type": "string", "enum": []string{"Feature"}}, "id": gin.H{"type": "integer", "readOnly": true},
		"geometry": geometry, "properties": properties}}
	if whole {
		s["required"] = []string{"type", "geometry", "properties"}
		properties["required"] = []string{"code", "name", "level"}
	}
	return s
}

// ogcWriteOperations adds the grids collection's Part 4 operations.
func ogcWriteOperations(paths gin.H) {
	errs := func(codes ...string) gin.H {
		out := gin.H{}
		for _, c := range codes {
			out[c] = gin.H{"$ref": "#/components/responses/Error"}
		}
		return out
	}
	body := func(schema string, patch bool) gin.H {
		content := gin.H{mediaGeoJSON: gin.H{"schema": gin.H{"$ref": "#/components/schemas/" + schema}}}
		if patch {
			content["application/merge-patch+json"] = gin.H{"schema": gin.H{"$ref": "#/components/schemas/" + schema}}
		}
		return gin.H{"required": true, "content": content}
	}
	items := paths["/collections/grids/items"].(gin.H)
	created := errs("400", "401", "403", "404", "409", "415", "422")
	created["201"] = gin.H{"description": "The grid is created; Location is its item.",
		"headers": gin.H{
			"Location": gin.H{"description": "The new item's URL.", "schema": gin.H{"type": "string", "format": "uri"}},
			"ETag":     gin.H{"description": "The new grid's ETag, for a later If-Match.", "schema": gin.H{"type": "string"}}},
		"content": gin.H{mediaGeoJSON: gin.H{"schema": gin.H{"$ref": "#/components/schemas/Feature"}}}}
	items["post"] = gin.H{"summary": "Grids: create a grid", "operationId": "create_grids",
		"description": "Imports one grid, checked as POST /api/v1/grids checks it: geometry validity, code and parent, no overlap within its level, inside its parent. A scoped caller creates grids under a grid of their scope.",
		"parameters":  []any{ref("Content-Crs")}, "requestBody": body("GridFeature", false), "responses": created}

	item := paths["/collections/grids/items/{featureId}"].(gin.H)
	item["get"].(gin.H)["responses"].(gin.H)["200"].(gin.H)["headers"].(gin.H)["ETag"] = gin.H{
		"description": "The grid version's ETag: send it in If-Match to replace, update or delete.", "schema": gin.H{"type": "string"}}
	changed := errs("400", "401", "403", "404", "409", "412", "415", "422", "428")
	changed["200"] = gin.H{"$ref": "#/components/responses/ChangeReport"}
	change := func(summary, opID, desc, schema string, patch bool) gin.H {
		return gin.H{"summary": summary, "operationId": opID, "description": desc,
			"parameters":  []any{ref("featureId"), ref("If-Match"), ref("dry_run"), ref("Content-Crs")},
			"requestBody": body(schema, patch), "responses": changed}
	}
	item["put"] = change("Grids: replace a grid's boundary and name", "replace_grids",
		"Replaces the boundary (a redraw: topology checked, cameras and cases follow) and the name in one new version. Code, level and parent cannot change (400 naming the property); read-only properties are ignored. 422 names the topology finding.",
		"GridFeature", false)
	item["patch"] = change("Grids: update a grid's boundary or name", "update_grids",
		"As PUT, with only what changes: a geometry, a name, or both.", "GridFeaturePatch", true)
	deleted := errs("401", "403", "404", "409", "412", "428")
	deleted["204"] = gin.H{"description": "The grid is deleted; its history is kept."}
	item["delete"] = gin.H{"summary": "Grids: delete a grid", "operationId": "delete_grids",
		"description": "Deletes a grid without children (409 says how many it has) under If-Match.",
		"parameters":  []any{ref("featureId"), ref("If-Match")}, "responses": deleted}
}
