package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// ogcAPI serves the OpenAPI 3.0 definition of /ogc. Clients read the items
// parameters from it: GDAL takes each collection's queryables from the
// parameters of its own items path.
func (s *Server) ogcAPI(c *gin.Context) {
	if err := ogcOnlyParams(c, "f"); err != nil {
		writeError(c, s.log, err)
		return
	}
	s.ogcWrite(c, http.StatusOK, mediaOpenAPI, s.ogcOpenAPI(s.ogcOrigin(c)+"/ogc"))
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
func (s *Server) ogcOpenAPI(base string) gin.H {
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
	crsSchema := gin.H{"type": "string", "format": "uri", "enum": ogcCRSURIs(), "default": crs84URI}
	return gin.H{
		"openapi": "3.0.3",
		"info": gin.H{
			"title":       "Gridwatch OGC API Features",
			"version":     s.deps.Version,
			"description": "Grids, incidents and cameras as OGC API Features (Part 1 Core with GeoJSON, Part 2 CRS). Authenticate with a bearer token or the session cookie.",
		},
		"servers":  []gin.H{{"url": base}},
		"security": []gin.H{{"bearerAuth": []string{}}, {"cookieAuth": []string{}}},
		"paths":    paths,
		"components": gin.H{
			"securitySchemes": gin.H{
				"bearerAuth": gin.H{"type": "http", "scheme": "bearer", "description": "An API token (POST /api/v1/tokens)."},
				"cookieAuth": gin.H{"type": "apiKey", "in": "cookie", "name": sessionCookie},
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
			},
			"responses": gin.H{
				"Error": gin.H{"description": "An error: {\"error\":{\"code\",\"message\",\"details\"}}.",
					"content": gin.H{mediaJSON: gin.H{"schema": gin.H{"type": "object"}}}},
			},
		},
	}
}
