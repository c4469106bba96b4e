//! The plumbing of the custom CPU ops (net_ops, fused::flex): a Flex tensor's `f32` values
//! and dims, new tensors from values, the autodiff primitive in and out of a burn tensor, and a
//! parent's gradient registered in the backward pass.

use burn::backend::Flex;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::flex::FlexTensor;
use burn::tensor::backend::Backend;
use burn::tensor::{Shape, Tensor, TensorData, TensorPrimitive};

/// The `f32` values of a tensor in row-major order (copied only when strided).
pub fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => s.into(),
        None => t.to_contiguous().as_slice::<f32>().unwrap().to_vec().into(),
    }
}

/// A Flex tensor of these values in row-major order.
pub fn flex(v: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape.into()))
}

/// A tensor's dimensions.
pub fn dims(t: &FlexTensor) -> Vec<usize> {
    use burn::tensor::TensorMetadata;
    t.shape().to_vec()
}

/// A burn tensor's float primitive (on autodiff: the tensor and its graph node).
pub fn prim<B: Backend, const D: usize>(t: Tensor<B, D>) -> B::FloatTensorPrimitive {
    t.into_primitive().tensor()
}

/// A burn tensor around a float primitive.
pub fn wrap<B: Backend, const D: usize>(t: B::FloatTensorPrimitive) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

/// Registers a parent's gradient (values in row-major order), when the parent wants one.
pub fn register<const D: usize>(
    grads: &mut Gradients,
    parent: Option<(NodeId, Vec<f32>)>,
    shape: [usize; D],
) {
    if let Some((id, v)) = parent {
        grads.register::<Flex>(id, flex(v, shape));
    }
}
