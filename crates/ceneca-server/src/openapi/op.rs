//! Describing one operation, next to the route that serves it: who may call it, what it
//! takes and what it answers. [`super::super::handlers::v1::Routes::route`] takes these
//! with every route, so no route can be added without its description.

use serde_json::Value as Json;
use utoipa::ToSchema;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder};

/// Who may call an operation (DESIGN.md §3 rule 8), which decides its security and the
/// errors it documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential (registration, log-in, probes).
    Public,
    /// A log-in session or a mapped client certificate: the whole account. API and device
    /// tokens are refused.
    Account,
    /// Any credential, API and device tokens included: workspace content.
    Content,
}

/// One operation being described.
pub struct Op {
    pub(crate) method: HttpMethod,
    access: Access,
    builder: OperationBuilder,
    /// Status → response, in the order given.
    responses: Vec<(String, RefOr<utoipa::openapi::Response>)>,
}

pub fn get(id: &str, summary: &str) -> Op {
    Op::new(HttpMethod::Get, id, summary)
}
pub fn post(id: &str, summary: &str) -> Op {
    Op::new(HttpMethod::Post, id, summary)
}
pub fn put(id: &str, summary: &str) -> Op {
    Op::new(HttpMethod::Put, id, summary)
}
pub fn patch(id: &str, summary: &str) -> Op {
    Op::new(HttpMethod::Patch, id, summary)
}
pub fn delete(id: &str, summary: &str) -> Op {
    Op::new(HttpMethod::Delete, id, summary)
}

/// A reference to a schema registered in the document's components.
pub fn schema_of<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

/// A query parameter.
pub fn query(name: &str, description: &str, schema: impl Into<RefOr<Schema>>) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// A query parameter that must be present.
pub fn required_query(
    name: &str,
    description: &str,
    schema: impl Into<RefOr<Schema>>,
) -> Parameter {
    let mut parameter = query(name, description, schema);
    parameter.required = Required::True;
    parameter
}

/// A string schema, for parameters.
pub fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// A file's bytes, as a part of a form.
pub fn binary() -> ObjectBuilder {
    use utoipa::openapi::schema::{KnownFormat, SchemaFormat};
    string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
}

/// `{items: [item]}`: a whole answer, not paged.
pub fn items(item: RefOr<Schema>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "items",
            utoipa::openapi::schema::ArrayBuilder::new().items(item),
        )
        .required("items")
        .into()
}

pub fn nullable_string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
}

impl Op {
    fn new(method: HttpMethod, id: &str, summary: &str) -> Self {
        Op {
            method,
            access: Access::Content,
            builder: OperationBuilder::new()
                .operation_id(Some(id))
                .summary(Some(summary)),
            responses: Vec::new(),
        }
    }

    pub fn tag(mut self, tag: &str) -> Self {
        self.builder = self.builder.tag(tag);
        self
    }

    pub fn describe(mut self, description: &str) -> Self {
        self.builder = self.builder.description(Some(description));
        self
    }

    pub fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    pub fn param(mut self, parameter: Parameter) -> Self {
        self.builder = self.builder.parameter(parameter);
        self
    }

    pub fn params(self, parameters: impl IntoIterator<Item = Parameter>) -> Self {
        parameters.into_iter().fold(self, Op::param)
    }

    /// A required JSON body.
    pub fn body(mut self, schema: impl Into<RefOr<Schema>>, example: Option<Json>) -> Self {
        let content = ContentBuilder::new()
            .schema(Some(schema))
            .example(example)
            .build();
        self.builder = self.builder.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", content)
                .build(),
        ));
        self
    }

    /// A required body, as JSON (`json`) or as `multipart/form-data` whose `parts` come
    /// in the order given (an object part is JSON, as OpenAPI encodes it).
    pub fn json_or_form_body(
        mut self,
        json: RefOr<Schema>,
        parts: impl IntoIterator<Item = (&'static str, RefOr<Schema>)>,
        description: &str,
    ) -> Self {
        let mut form = ObjectBuilder::new().schema_type(Type::Object);
        for (name, schema) in parts {
            form = form.property(name, schema).required(name);
        }
        self.builder = self.builder.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .description(Some(description))
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(json)).build(),
                )
                .content(
                    "multipart/form-data",
                    ContentBuilder::new().schema(Some(form)).build(),
                )
                .build(),
        ));
        self
    }

    /// A JSON body that may be left out.
    pub fn optional_body_of<T: ToSchema>(mut self) -> Self {
        let content = ContentBuilder::new().schema(Some(schema_of::<T>())).build();
        self.builder = self.builder.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::False))
                .content("application/json", content)
                .build(),
        ));
        self
    }

    pub fn body_of<T: ToSchema>(self) -> Self {
        self.body(schema_of::<T>(), None)
    }

    /// A JSON answer.
    pub fn answers(mut self, status: u16, description: &str, schema: RefOr<Schema>) -> Self {
        let response = ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(schema)).build(),
            )
            .build();
        self.responses.push((status.to_string(), response.into()));
        self
    }

    pub fn answers_of<T: ToSchema>(self, status: u16, description: &str) -> Self {
        self.answers(status, description, schema_of::<T>())
    }

    /// A JSON answer with links a client (or a stateful test) follows: operation id →
    /// its parameter taken from this answer's `id`.
    pub fn answers_linked(
        mut self,
        status: u16,
        description: &str,
        schema: RefOr<Schema>,
        links: &[(&str, &str)],
    ) -> Self {
        let mut response = ResponseBuilder::new().description(description).content(
            "application/json",
            ContentBuilder::new().schema(Some(schema)).build(),
        );
        for (operation, parameter) in links {
            response = response.link(
                *operation,
                LinkBuilder::new()
                    .operation_id(*operation)
                    .parameter(*parameter, "$response.body#/id")
                    .build(),
            );
        }
        self.responses
            .push((status.to_string(), response.build().into()));
        self
    }

    /// An answer without a body.
    pub fn empty(mut self, status: u16, description: &str) -> Self {
        self.responses.push((
            status.to_string(),
            ResponseBuilder::new()
                .description(description)
                .build()
                .into(),
        ));
        self
    }

    /// An answer in another media type (the audit export's JSON lines).
    pub fn answers_media(mut self, status: u16, description: &str, media: &str) -> Self {
        let response = ResponseBuilder::new()
            .description(description)
            .content(
                media,
                ContentBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            )
            .build();
        self.responses.push((status.to_string(), response.into()));
        self
    }

    /// The finished operation: its security, and the errors every operation of its kind
    /// may answer (all in the one error format), `default` covering the rest.
    pub fn build(self) -> (HttpMethod, Operation) {
        let error = |name: &str| -> RefOr<utoipa::openapi::Response> {
            RefOr::Ref(Ref::from_response_name(name))
        };
        let mut builder = self.builder;
        for (status, response) in self.responses {
            builder = builder.response(status, response);
        }
        builder = builder
            .response("400", error("BadRequest"))
            .response("422", error("Invalid"))
            .response("429", error("RateLimited"));
        builder = match self.access {
            Access::Public => builder.securities(Some(Vec::<SecurityRequirement>::new())),
            Access::Account | Access::Content => {
                let schemes: &[&str] = if self.access == Access::Account {
                    &["session", "cookie", "mutualTLS"]
                } else {
                    &["session", "cookie", "mutualTLS", "apiToken"]
                };
                let mut b = builder
                    .response("401", error("Unauthorized"))
                    .response("403", error("Forbidden"))
                    .response("404", error("NotFound"));
                for scheme in schemes {
                    b = b.security(SecurityRequirement::new(*scheme, Vec::<String>::new()));
                }
                b
            }
        };
        let op = builder.response("default", error("Error")).build();
        (self.method, op)
    }
}

/// The error answers operations refer to, for the document's components.
pub fn error_responses() -> Vec<(&'static str, utoipa::openapi::Response)> {
    [
        (
            "BadRequest",
            "A parameter or the body is malformed (`fields` names it).",
        ),
        (
            "Invalid",
            "The body is well-formed but invalid (`fields` says why).",
        ),
        (
            "RateLimited",
            "Too many requests; wait `Retry-After` seconds.",
        ),
        ("Unauthorized", "No valid credential (or MFA is required)."),
        ("Forbidden", "The credential may not do this."),
        ("NotFound", "Not found, or not visible to the caller."),
        ("Error", "Any other error, in the same format."),
    ]
    .into_iter()
    .map(|(name, description)| {
        let response = ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(schema_of::<ceneca_wire::ErrorBody>()))
                    .build(),
            )
            .build();
        (name, response)
    })
    .collect()
}
